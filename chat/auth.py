"""API tokens: django-rest-knox's tokens under the contract's `Bearer` scheme (REST_KNOX in settings).

Only a SHA-512 digest of each token is stored (plus knox's 15-character lookup prefix), so the
database and the admin never hold a usable token. A token lapses TOKEN_TTL_HOURS after its last
use (knox's AUTO_REFRESH), so a client that keeps using its token never has to sign in again.
Its owner revokes it with `DELETE /api/v1/auth/token` (or all of theirs with `.../revoke-all`);
staff delete tokens in the admin (*Knox → Auth tokens*, which lists digests only).
"""

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from knox.signals import token_expired
from rest_framework.exceptions import AuthenticationFailed


class BearerTokenAuthentication(TokenAuthentication):
    """knox's TokenAuthentication minus its sweep of the user's other tokens on every request.

    knox reads all of the user's tokens on each request to delete the expired ones: one more
    query per API call, for rows nothing reads. Here a token is judged on its own (an expired one
    is deleted when presented, as knox does), and sign-in (`issue_token`) drops the user's
    expired tokens instead.
    """

    def _cleanup_token(self, auth_token: AuthToken) -> bool:
        if auth_token.expiry is None or auth_token.expiry >= timezone.now():
            return False
        username = auth_token.user.get_username()
        auth_token.delete()
        token_expired.send(sender=self.__class__, username=username, source="auth_token")
        return True


class BearerTokenScheme(KnoxTokenScheme):
    """The OpenAPI schema describes it as knox's own (drf-spectacular matches classes exactly)."""

    target_class = "chat.auth.BearerTokenAuthentication"


def issue_token(user: AbstractBaseUser) -> tuple[str, datetime]:
    """A new token for `user`: its raw value (returned once, never stored) and its expiry."""
    AuthToken.objects.filter(user=user, expiry__lt=timezone.now()).delete()  # the only sweep of expired ones
    token, raw = AuthToken.objects.create(user=user)
    return raw, token.expiry


def revoke_token(token: AuthToken) -> None:
    token.delete()


def revoke_all_tokens(user: AbstractBaseUser) -> int:
    """Revoke every token of `user`; how many there were."""
    deleted, _ = AuthToken.objects.filter(user=user).delete()
    return deleted


def token_user(raw: str):
    """The active user a raw token belongs to; None for an unknown, expired or revoked token."""
    try:
        user, _ = BearerTokenAuthentication().authenticate_credentials(raw.encode())
    except AuthenticationFailed:
        return None
    return user
