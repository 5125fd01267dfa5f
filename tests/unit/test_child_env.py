from __future__ import annotations

from codetune_studio.core.child_env import child_environment

_PARENT = {
    "PATH": "/usr/bin",
    "HOME": "/home/ada",
    "LC_ALL": "C.UTF-8",
    "HF_HUB_OFFLINE": "1",
    "OPENAI_API_KEY": "sk-canary",
    "HF_TOKEN": "hf_canary",
    "PGPASSWORD": "canary",
    "DATABASE_URL": "postgresql://u:canary@db/x",
    "CODETUNE_DATABASE_URL": "postgresql://u:canary@db/x",
    "AWS_SECRET_ACCESS_KEY": "canary",
    "GITLAB_PAT": "canary",
    "DISPLAY": ":0",
}


def test_secrets_and_database_urls_never_reach_a_child() -> None:
    env = child_environment(source=_PARENT)
    assert "canary" not in " ".join(env.values())
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/ada",
        "LC_ALL": "C.UTF-8",
        "HF_HUB_OFFLINE": "1",
    }


def test_caller_can_allow_a_name_and_set_values_explicitly() -> None:
    env = child_environment(
        {"CODETUNE_DATABASE_URL": "sqlite:///x.db"}, allow=["DISPLAY"], source=_PARENT
    )
    assert env["DISPLAY"] == ":0"
    assert env["CODETUNE_DATABASE_URL"] == "sqlite:///x.db"
