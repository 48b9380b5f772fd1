"""The services tests' shared fixtures, defined in the support modules (which tests/api and
tests/verify import too): the claims world and the push kit's database, receiver and gateway."""

from tests.services.claims_support import world  # noqa: F401
from tests.services.push_support import db, gateway, receiver  # noqa: F401
