"""The admin rules both stores apply (store/roles.py): which bans and role changes are
refused, and which room changes are audited."""

from __future__ import annotations

import pytest

from parley.store import DeleteRequest, EditRequest, TopicRequest
from parley.store.roles import CLI_ACTOR, ban_refusal, change_audit, role_refusal


@pytest.mark.parametrize(
    ("actor", "username", "admin", "ban", "refused"),
    [
        ("ann", "bob", False, True, None),
        ("ann", "ANN", False, True, "you cannot ban yourself"),
        ("ann", "bob", True, True, "bob is an admin: revoke the role first, then ban"),
        (CLI_ACTOR, "bob", True, True, "bob is an admin: revoke the role first, then ban"),
        ("ann", "ann", True, False, None),  # unbanning is never refused
    ],
)
def test_ban_refusal(
    actor: str, username: str, admin: bool, ban: bool, refused: str | None
) -> None:
    refusal = ban_refusal(actor, username, admin=admin, ban=ban)
    assert (None if refusal is None else str(refusal)) == refused


@pytest.mark.parametrize(
    ("actor", "username", "grant", "banned", "last", "refused"),
    [
        ("ann", "bob", True, False, True, None),
        ("ann", "bob", True, True, False, "bob is banned: unban them first"),
        ("ann", "Ann", False, False, False, "you cannot revoke your own admin role"),
        (CLI_ACTOR, "bob", False, False, True, "bob is the last admin"),
        (CLI_ACTOR, "bob", False, False, False, None),
    ],
)
def test_role_refusal(
    actor: str, username: str, grant: bool, banned: bool, last: bool, refused: str | None
) -> None:
    refusal = role_refusal(actor, username, grant=grant, banned=banned, last_admin=last)
    if refused is None:
        assert refusal is None
    else:
        assert str(refusal).startswith(refused), refusal


def test_change_audit() -> None:
    own = DeleteRequest("r", "ann", None, 1)
    assert change_audit(own, "bob", "ann") is None
    assert change_audit(DeleteRequest("r", "bob", None, 1), "bob", "ann") == (
        "delete_message",
        "ann",
    )
    assert change_audit(TopicRequest("r", "bob", None, "t"), "bob", None) is None
    admin_topic = TopicRequest("r", "cat", None, "new", moderator=True)
    assert change_audit(admin_topic, "bob", None) == ("topic", "new")
    assert change_audit(EditRequest("r", "ann", None, 1, "x"), "bob", "ann") is None
