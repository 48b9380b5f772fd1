"""Format modules; importing this package registers each of them."""


from adapters import hl7v2 as _hl7v2  # noqa: F401,E402  (registers "hl7v2")
