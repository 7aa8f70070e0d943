from rest_framework.authentication import TokenAuthentication


class BearerTokenAuthentication(TokenAuthentication):
    """`Authorization: Bearer <token>` (the contract's scheme) over DRF's token table."""

    keyword = "Bearer"
