"""`--hash-profile`: the argon2id parameters of new hashes; any stored hash verifies."""

from __future__ import annotations

from parley.server.accounts import HASH_PROFILES


def test_profiles_set_their_parameters_and_verify_each_others_hashes() -> None:
    strong, light = HASH_PROFILES["rfc9106"](), HASH_PROFILES["owasp"]()
    assert (strong.time_cost, strong.memory_cost, strong.parallelism) == (3, 65536, 4)
    assert (light.time_cost, light.memory_cost, light.parallelism) == (2, 19456, 1)
    for made, checker in ((strong, light), (light, strong)):
        stored = made.hash("correct horse")
        assert checker.verify(stored, "correct horse")
        assert checker.check_needs_rehash(stored) == (made is not checker)
