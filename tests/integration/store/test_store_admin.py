"""Roles, bans, invites, the registration mode and the audit log (issue 15), run unchanged
on SQLite and on PostgreSQL (see conftest.py); races between nodes on one database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from parley.store import (
    AuditEntry,
    DeleteRequest,
    MemberChange,
    Refused,
    Registration,
    SignUp,
    Store,
    TopicRequest,
    UnknownUser,
)
from parley.store.roles import CLI_ACTOR
from tests.support.stores import nodes_on_one_database

StoreFactory = Callable[[], Store]
OldDatabase = Callable[[int, str], Awaitable[None]]

pytestmark = pytest.mark.timeout(120)

NOW = 1_900_000_000.0  # the clock the invite tests pass (epoch seconds)


async def users(store: Store, *names: str) -> None:
    for name in names:
        assert await store.create_user(name, "hash")


async def roles(store: Store, *names: str) -> dict[str, tuple[bool, bool]]:
    """(admin, banned) of each account."""
    found = {}
    for name in names:
        user = await store.find_user(name)
        assert user is not None, name
        found[name] = (user.admin, user.banned)
    return found


def actions(entries: list[AuditEntry]) -> list[tuple[str, str, str, str | None]]:
    return [(e.actor, e.action, e.target, e.room) for e in entries]


# --- roles ----------------------------------------------------------------------------


async def test_the_first_account_is_an_admin(store: Store) -> None:
    await users(store, "Ann", "bob")
    assert await store.create_user("cat", "hash", admin=True)
    assert await roles(store, "ann", "bob", "cat") == {
        "ann": (True, False),
        "bob": (False, False),
        "cat": (True, False),
    }


async def test_two_first_registrations_at_once_make_one_admin(
    store_factory: StoreFactory,
) -> None:
    async with nodes_on_one_database(store_factory, 2) as (one, two):
        names = [f"user{i}" for i in range(12)]
        created = await asyncio.gather(
            *(
                (one if i % 2 else two).register(name, "hash", None, NOW)
                for i, name in enumerate(names)
            )
        )
        assert created == [SignUp.CREATED] * len(names)
        admins = [name for name, (admin, _) in (await roles(one, *names)).items() if admin]
        assert len(admins) == 1


async def test_grant_and_revoke_are_audited_and_idempotent(store: Store) -> None:
    await users(store, "ann", "bob")
    assert await store.set_admin("ann", "BOB", True)
    assert not await store.set_admin("ann", "bob", True)  # already: nothing logged
    assert await store.set_admin("bob", "ann", False)
    assert await roles(store, "ann", "bob") == {"ann": (False, False), "bob": (True, False)}
    assert actions(await store.audit_log()) == [
        ("bob", "revoke", "ann", None),
        ("ann", "grant", "bob", None),
    ]


@pytest.mark.parametrize(
    ("actor", "target", "why"),
    [("ann", "ann", "your own"), (CLI_ACTOR, "ann", "last admin")],
)
async def test_revoking_yourself_or_the_last_admin_is_refused(
    store: Store, actor: str, target: str, why: str
) -> None:
    await users(store, "ann", "bob")
    with pytest.raises(Refused, match=why):
        await store.set_admin(actor, target, False)
    assert await roles(store, "ann") == {"ann": (True, False)}
    assert await store.audit_log() == []


async def test_two_admins_revoking_each_other_at_once_keep_one(
    store_factory: StoreFactory,
) -> None:
    async with nodes_on_one_database(store_factory, 2) as (one, two):
        await users(one, "ann", "bob")
        await one.set_admin("ann", "bob", True)
        done = await asyncio.gather(
            one.set_admin("ann", "bob", False),
            two.set_admin("bob", "ann", False),
            return_exceptions=True,
        )
        assert sorted(type(d).__name__ for d in done) == ["Refused", "bool"]
        admins = [n for n, (admin, _) in (await roles(one, "ann", "bob")).items() if admin]
        assert len(admins) == 1


async def test_an_unknown_user_has_no_role_and_no_ban(store: Store) -> None:
    await users(store, "ann")
    for change in (store.set_admin, store.set_banned):
        with pytest.raises(UnknownUser):
            await change("ann", "nobody", True)
    assert await store.audit_log() == []


# --- bans -----------------------------------------------------------------------------


async def test_a_ban_ends_every_session_and_keeps_new_ones_dead(store: Store) -> None:
    await users(store, "ann", "bob")
    await store.create_token("t1", "bob", NOW)
    await store.create_token("t2", "bob", NOW)
    assert await store.set_banned("ann", "Bob", True)
    assert await store.token_user("t1", NOW - 1) is None
    assert await store.token_user("t2", NOW - 1) is None
    # a sign-in that raced the ban: its token does not work either
    await store.create_token("t3", "bob", NOW)
    assert await store.token_user("t3", NOW - 1) is None
    assert await roles(store, "bob") == {"bob": (False, True)}
    assert not await store.set_banned("ann", "bob", True)
    assert await store.set_banned(CLI_ACTOR, "bob", False)
    assert await store.token_user("t3", NOW - 1) == "bob"  # unbanned: a new sign-in works
    assert actions(await store.audit_log()) == [
        (CLI_ACTOR, "unban", "bob", None),
        ("ann", "ban", "bob", None),
    ]


@pytest.mark.parametrize(
    ("actor", "target", "why"),
    [("ann", "ann", "yourself"), ("bob", "ann", "revoke the role first")],
)
async def test_banning_yourself_or_an_admin_is_refused(
    store: Store, actor: str, target: str, why: str
) -> None:
    await users(store, "ann", "bob")
    await store.create_token("t1", "ann", NOW)
    with pytest.raises(Refused, match=why):
        await store.set_banned(actor, target, True)
    assert await store.token_user("t1", NOW - 1) == "ann"
    assert await roles(store, "ann") == {"ann": (True, False)}
    assert await store.audit_log() == []


async def test_a_banned_account_is_granted_nothing(store: Store) -> None:
    await users(store, "ann", "bob")
    await store.set_banned("ann", "bob", True)
    with pytest.raises(Refused, match="unban"):
        await store.set_admin("ann", "bob", True)
    assert await roles(store, "bob") == {"bob": (False, True)}


# --- the list of accounts -------------------------------------------------------------


async def test_accounts_are_listed_by_name_ignoring_case(store: Store) -> None:
    await users(store, "bob", "Alice", "carol", "alicia", "Bobby")
    listed = await store.list_users("", None, 50)
    assert [u.username for u in listed] == ["Alice", "alicia", "bob", "Bobby", "carol"]
    assert [(u.admin, u.banned) for u in listed][2] == (True, False)  # bob came first
    assert all(u.created_at.endswith("Z") for u in listed)
    assert [u.username for u in await store.list_users("ALI", None, 50)] == ["Alice", "alicia"]
    assert [u.username for u in await store.list_users("", "ALICIA", 2)] == ["bob", "Bobby"]
    assert [u.username for u in await store.list_users("b", "bob", 50)] == ["Bobby"]
    assert await store.list_users("zz", None, 50) == []


# --- registration and invites -----------------------------------------------------------


async def test_registration_follows_the_stored_mode(store: Store) -> None:
    assert await store.registration() is Registration.OPEN
    assert await store.register("ann", "hash", None, NOW) is SignUp.CREATED
    assert await store.register("ANN", "hash", None, NOW) is SignUp.TAKEN
    assert await store.set_registration("ann", Registration.CLOSED)
    assert not await store.set_registration("ann", Registration.CLOSED)
    assert await store.registration() is Registration.CLOSED
    assert await store.register("bob", "hash", None, NOW) is SignUp.CLOSED
    assert await store.create_user("bob", "hash")  # the command line's way in
    assert await store.set_registration(CLI_ACTOR, Registration.INVITE)
    assert await store.register("cat", "hash", None, NOW) is SignUp.NO_INVITE
    assert await store.find_user("cat") is None
    assert actions(await store.audit_log()) == [
        (CLI_ACTOR, "registration", "invite", None),
        ("ann", "registration", "closed", None),
    ]


async def test_an_invite_is_used_once_and_not_after_it_expires(store: Store) -> None:
    await users(store, "ann")
    await store.set_registration("ann", Registration.INVITE)
    made = await store.create_invite("ann", "code-1", NOW, NOW + 60)
    await store.create_invite("ann", "code-2", NOW + 1, NOW + 61)
    assert (made.code, made.used_by) == ("code-1", None)
    assert await store.register("bob", "hash", "nosuch", NOW) is SignUp.NO_INVITE
    assert await store.register("bob", "hash", "code-1", NOW + 59) is SignUp.CREATED
    assert await store.register("cat", "hash", "code-1", NOW + 59) is SignUp.NO_INVITE
    assert await store.register("cat", "hash", "code-2", NOW + 61) is SignUp.NO_INVITE  # expired
    assert await store.find_user("cat") is None
    assert await store.register("bob", "hash", "code-2", NOW) is SignUp.TAKEN
    listed = await store.invites()
    assert [(i.code, i.used_by, i.used_at) for i in listed] == [
        ("code-2", None, None),  # newest first; a taken name used nothing up
        ("code-1", "bob", NOW + 59),
    ]
    assert (listed[1].created_by, listed[1].created_at, listed[1].expires_at) == (
        "ann",
        NOW,
        NOW + 60,
    )


async def test_an_invite_raced_by_two_nodes_makes_one_account(
    store_factory: StoreFactory,
) -> None:
    async with nodes_on_one_database(store_factory, 2) as (one, two):
        await users(one, "ann")
        await one.set_registration("ann", Registration.INVITE)
        await one.create_invite("ann", "only-one", NOW, NOW + 60)
        names = [f"racer{i}" for i in range(8)]
        outcomes = await asyncio.gather(
            *((one, two)[i % 2].register(n, "hash", "only-one", NOW) for i, n in enumerate(names))
        )
        assert sorted(outcomes) == sorted([SignUp.CREATED] + [SignUp.NO_INVITE] * 7)
        created = [n for n, o in zip(names, outcomes, strict=True) if o is SignUp.CREATED]
        assert [i.used_by for i in await two.invites()] == created


async def test_a_revoked_invite_is_gone(store: Store) -> None:
    await users(store, "ann")
    await store.set_registration("ann", Registration.INVITE)
    await store.create_invite("ann", "code-1", NOW, NOW + 60)
    assert await store.delete_invite("ann", "code-1")
    assert not await store.delete_invite("ann", "code-1")
    assert await store.invites() == []
    assert await store.register("bob", "hash", "code-1", NOW) is SignUp.NO_INVITE
    assert actions(await store.audit_log()) == [
        ("ann", "invite_revoke", "code-1", None),
        ("ann", "invite", "code-1", None),
        ("ann", "registration", "invite", None),
    ]


# --- the audit log ----------------------------------------------------------------------


async def test_the_actions_of_admins_and_owners_in_rooms_are_audited(store: Store) -> None:
    await users(store, "ann", "bob", "cat")  # ann: the admin
    room = await store.create_room("club", True, "bob")
    assert room is not None
    for name in ("ann", "cat"):
        await store.change_member(MemberChange(room.room, name, "invited", "bob"))
    own, _ = await store.append(room.room, "cat", "mine", None)
    by_owner, _ = await store.append(room.room, "cat", "the owner takes it", None)
    by_admin, _ = await store.append(room.room, "bob", "the admin takes it", None)
    await store.change(DeleteRequest(room.room, "cat", None, own.seq))  # one's own: no entry
    await store.change(DeleteRequest(room.room, "bob", None, by_owner.seq))
    await store.change(DeleteRequest(room.room, "ann", None, by_admin.seq, moderator=True))
    await store.change(TopicRequest(room.room, "bob", None, "owner's"))  # no entry
    await store.change(TopicRequest(room.room, "ann", None, "admin's", moderator=True))
    await store.change_member(MemberChange(room.room, "cat", "removed", "bob"))
    await store.change_member(MemberChange(room.room, "ann", "left", "ann"))  # no entry
    await store.change_member(MemberChange(room.room, "cat", "removed", "bob"))  # not a member
    assert actions(await store.audit_log()) == [
        ("bob", "remove_member", "cat", room.room),
        ("ann", "topic", "admin's", room.room),
        ("ann", "delete_message", "bob", room.room),
        ("bob", "delete_message", "cat", room.room),
    ]


async def test_the_audit_log_pages_back_and_follows_forward(store: Store) -> None:
    await users(store, "ann")
    for i in range(5):
        await store.create_invite("ann", f"code-{i}", NOW, NOW + 60)
    newest = await store.audit_log(limit=2)
    assert [e.target for e in newest] == ["code-4", "code-3"]
    assert newest[0].id > newest[1].id
    assert newest[0].ts.endswith("Z")
    older = await store.audit_log(before=newest[-1].id, limit=50)
    assert [e.target for e in older] == ["code-2", "code-1", "code-0"]
    assert await store.audit_log(before=older[-1].id) == []
    forward = await store.audit_log(after=older[1].id, limit=2)
    assert [e.target for e in forward] == ["code-2", "code-3"]


async def test_a_reset_password_is_audited_only_when_someone_else_sets_it(
    store: Store,
) -> None:
    await users(store, "ann")
    await store.set_password("ann", "new-hash", None)
    await store.set_password("ann", "newer-hash", None, actor=CLI_ACTOR)
    assert actions(await store.audit_log()) == [(CLI_ACTOR, "reset_password", "ann", None)]


# --- migration 9 ------------------------------------------------------------------------


async def test_migration_9_makes_the_oldest_account_the_admin(
    store_factory: StoreFactory, old_database: OldDatabase
) -> None:
    await old_database(
        7,
        "INSERT INTO users (username, username_key, password_hash, created_at) VALUES"
        " ('zed', 'zed', 'h', '2026-01-01T00:00:00.000Z'),"
        " ('amy', 'amy', 'h', '2026-02-01T00:00:00.000Z');",
    )
    store = store_factory()
    await store.open()
    try:
        assert await roles(store, "zed", "amy") == {"zed": (True, False), "amy": (False, False)}
        assert await store.registration() is Registration.OPEN
        assert await store.create_user("new", "hash")
        assert await roles(store, "new") == {"new": (False, False)}
    finally:
        await store.close()
