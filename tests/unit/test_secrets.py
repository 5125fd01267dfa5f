from __future__ import annotations

import keyring
import pytest
from keyring.backends import fail
from pydantic import SecretStr

from codetune_studio.core.errors import SecretError
from codetune_studio.secrets import KEYRING_SERVICE, KeyringSecretStore, MemorySecretStore
from tests.helpers import MemoryKeyring

SECRET = "sk-test-0123456789abcdef"


def test_set_then_get_round_trips_through_the_keyring_service() -> None:
    store = KeyringSecretStore()
    store.set("openai", SecretStr(SECRET))
    assert store.get("openai").get_secret_value() == SECRET
    backend = keyring.get_keyring()
    assert isinstance(backend, MemoryKeyring)
    assert backend.entries == {(KEYRING_SERVICE, "openai"): SECRET}
    assert store.info("openai").source == "keyring"


def test_environment_variable_is_a_read_only_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    store = KeyringSecretStore()
    assert store.get("anthropic").get_secret_value() == SECRET
    assert store.info("anthropic").source == "environment"
    assert store.delete("anthropic") is False
    assert store.get("anthropic").get_secret_value() == SECRET


def test_keyring_value_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "from-env")
    store = KeyringSecretStore()
    store.set("huggingface", SecretStr("from-keyring"))
    assert store.get("huggingface").get_secret_value() == "from-keyring"


def test_missing_key_says_how_to_set_it() -> None:
    with pytest.raises(SecretError, match=r"keys set openai.*OPENAI_API_KEY"):
        KeyringSecretStore().get("openai")


def test_without_a_keyring_backend_nothing_is_written_anywhere(tmp_path, monkeypatch) -> None:
    keyring.set_keyring(fail.Keyring())  # type: ignore[no-untyped-call]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SecretError, match="No usable OS keyring") as raised:
        KeyringSecretStore().set("openai", SecretStr(SECRET))
    assert SECRET not in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_plaintext_backend_is_refused() -> None:
    plaintext = type("PlaintextKeyring", (MemoryKeyring,), {"__module__": "keyrings.alt.file"})
    keyring.set_keyring(plaintext())
    with pytest.raises(SecretError, match="plain file"):
        KeyringSecretStore().set("openai", SecretStr(SECRET))


def test_delete_reports_whether_a_key_was_there() -> None:
    store = KeyringSecretStore()
    store.set("openai", SecretStr(SECRET))
    assert store.delete("openai") is True
    assert store.delete("openai") is False
    assert store.info("openai").is_set is False


@pytest.mark.parametrize(
    "store", [KeyringSecretStore(), MemorySecretStore()], ids=["keyring", "memory"]
)
def test_unknown_names_and_empty_values_are_rejected(store) -> None:
    with pytest.raises(SecretError, match="unknown key name 'github'"):
        store.get("github")
    with pytest.raises(SecretError, match="empty"):
        store.set("openai", SecretStr("   "))


def test_secret_value_never_appears_in_repr() -> None:
    store = MemorySecretStore({"openai": SECRET})
    assert SECRET not in repr(store.get("openai"))
    assert SECRET not in str(store.get("openai"))
