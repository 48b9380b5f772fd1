"""Format modules; importing this package registers each of them."""
