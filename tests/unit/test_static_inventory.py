"""The static YAML inventory reader against ansible-inventory itself: same hosts, groups and variables.

certaudit reads a plain static YAML inventory without ansible-inventory (its start costs more than the
gate's budget); every inventory here is read both ways and must give the same hosts, the same groups
for each, and the same merged variables. What the reader does not know for sure goes to Ansible.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from certaudit import inventory as inventory_module
from certaudit.inventory import _ansible_inventory, _groups_of, load_inventory, static_listing

REPO = Path(__file__).resolve().parents[2]

# Each case a YAML inventory that the reader must read exactly as Ansible does.
SAME = {
    "fleet_style": """
all:
  vars: {ansible_user: root, ansible_ssh_common_args: "-o StrictHostKeyChecking=no", certaudit_warn_days: 30}
  hosts:
    h1: {ansible_host: 127.0.0.1, certaudit_domain: a.example.com}
    h2: {ansible_host: 127.0.0.2}
""",
    "nesting_and_precedence": """
all:
  vars: {x: all, y: all, z: all, w: all}
  children:
    web:
      vars: {x: web, y: web}
      children:
        web_eu:
          vars: {x: web_eu}
          hosts:
            w1: {z: host}
            w2:
        web_us:
          hosts:
            w3:
    db:
      hosts:
        d1: {ansible_port: 2222}
  hosts:
    lone:
""",
    "top_level_groups_and_all_vars_after": """
zeta:
  hosts:
    z1: {v: 1}
alpha:
  vars: {v: alpha, n: 0755, b: yes, f: 1.5, l: [1, two, {three: 3}], d: {k: {k2: null}}}
  hosts:
    a1:
    z1: {other: x}
all:
  vars: {v: all}
""",
    "same_depth_groups_by_name": """
all:
  children:
    b_group: {vars: {who: b}, hosts: {h: }}
    a_group: {vars: {who: a}, hosts: {h: }}
    c_group: {vars: {who: c}}
""",
    "host_in_many_places_last_wins": """
all:
  hosts:
    h: {a: first, b: first}
  children:
    g1:
      hosts:
        h: {a: second}
    g2:
      children:
        g3:
          hosts:
            h: {b: third}
            k:
""",
    "deeper_path_wins": """
all:
  children:
    top:
      vars: {lvl: top}
      children:
        mid:
          vars: {lvl: mid}
          children:
            leaf: {vars: {lvl: leaf}}
    leaf:
      hosts: {h1: }
    other:
      vars: {lvl: other}
      hosts: {h1: }
""",
    "example_inventory": (REPO / "inventories" / "example.yml").read_text(),
    "local_inventory": (REPO / "inventories" / "local.yml").read_text(),
}

# Each case something only Ansible reads right: the reader must leave it to ansible-inventory.
DECLINED = {
    "host_range": "all:\n  hosts:\n    web[01:03]:\n",
    "host_port": "all:\n  hosts:\n    web1:2222:\n",
    "template": 'all:\n  vars: {x: \'{{ lookup("env", "HOME") }}\'}\n  hosts: {h: }\n',
    "unsafe_tag": "all:\n  vars: {x: !unsafe 'a'}\n  hosts: {h: }\n",
    "vault_tag": "all:\n  vars: {x: !vault '$ANSIBLE_VAULT;1.1;AES256'}\n  hosts: {h: }\n",
    "plugin": "plugin: constructed\n",
    "priority": "all:\n  children:\n    g: {vars: {ansible_group_priority: 5}, hosts: {h: }}\n",
    "unknown_key": "all:\n  hostz: {h: }\n",
    "hosts_list": "all:\n  hosts: [a, b]\n",
    "date": "all:\n  vars: {d: 2026-01-01}\n  hosts: {h: }\n",
    "cycle": "all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n",
    "host_and_group_same_name": "all:\n  children:\n    web: {hosts: {web: }}\n",
    "empty": "",
    "invalid_variable_name": "all:\n  vars: {my-var: 1}\n  hosts: {h: }\n",
    "invalid_host_variable_name": "all:\n  hosts: {h: {'weird key': 1}}\n",
    "all_as_a_child": "all:\n  children:\n    g:\n      children:\n        all:\n",
    "not_a_mapping": "- a\n- b\n",
}


def ansible_listing(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [_ansible_inventory(), "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        check=True,
        cwd=path.parent,
        env={k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")},
    )
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def meaning(listing: dict[str, Any]) -> tuple[dict[str, set[str]], dict[str, Any]]:
    """What certaudit takes from a listing: each host's groups and its merged variables."""
    membership = _groups_of(listing)
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    return membership, {host: hostvars.get(host) or {} for host in membership}


@pytest.fixture
def plain_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with no ansible.cfg, no group_vars, and no ANSIBLE_* settings, as the reader needs."""
    for name in [n for n in os.environ if n.startswith("ANSIBLE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(inventory_module, "_ansible_cfg_candidates", lambda: [tmp_path / "ansible.cfg"])
    return tmp_path


def written(place: Path, cases: dict[str, str]) -> dict[str, Path]:
    paths = {}
    for name, text in cases.items():
        (place / name).mkdir()
        paths[name] = place / name / "inventory.yml"
        paths[name].write_text(text)
    return paths


def test_the_reader_and_ansible_inventory_agree(plain_place: Path) -> None:
    paths = written(plain_place, SAME)
    with ThreadPoolExecutor(max_workers=4) as pool:  # ansible-inventory starts slowly: all at once
        theirs = dict(zip(paths, pool.map(ansible_listing, paths.values()), strict=True))
    for name, path in paths.items():
        ours = static_listing(path)
        assert ours is not None, f"{name}: the reader declined a plain inventory"
        assert meaning(ours) == meaning(theirs[name]), name


def test_what_only_ansible_reads_is_left_to_it(plain_place: Path) -> None:
    for name, path in written(plain_place, DECLINED).items():
        assert static_listing(path) is None, name


def test_anything_beside_the_file_that_could_change_it_sends_it_to_ansible(
    plain_place: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = written(plain_place, {"plain": SAME["fleet_style"]})["plain"]
    assert static_listing(path) is not None
    for beside in ("group_vars", "host_vars"):
        (path.parent / beside).mkdir()
        assert static_listing(path) is None, beside
        (path.parent / beside).rmdir()
    (plain_place / "ansible.cfg").write_text("[defaults]\n")
    assert static_listing(path) is None
    (plain_place / "ansible.cfg").unlink()
    monkeypatch.setenv("ANSIBLE_HASH_BEHAVIOUR", "merge")
    assert static_listing(path) is None
    monkeypatch.delenv("ANSIBLE_HASH_BEHAVIOUR")
    path.chmod(0o755)  # an executable inventory is a script to Ansible
    assert static_listing(path) is None
    path.chmod(0o644)
    ini = path.with_suffix(".ini")
    ini.write_text("[web]\nh1\n")
    assert static_listing(ini) is None


def test_a_static_inventory_is_loaded_without_ansible_inventory(plain_place: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = written(plain_place, {"example": SAME["example_inventory"]})["example"]

    def no_ansible(path: str) -> Any:
        raise AssertionError("ansible-inventory ran for a static inventory")

    monkeypatch.setattr(inventory_module, "_ansible_list", no_ansible)
    loaded = load_inventory(str(path), iter(["api-1"]))
    assert [t.name for t in loaded.targets] == ["api-1"]
    assert [(t.name, t.address, t.groups, t.policy.domain) for t in loaded.whole] == [
        ("api-1", "10.0.0.11", ("stemedb_api",), "stemedb.example.com"),
        ("api-2", "10.0.0.12", ("stemedb_api",), "stemedb.example.com"),
        ("api-internal", "10.0.1.5", ("internal",), "stemedb.internal.example.com"),
    ]


def test_a_declined_inventory_still_reaches_ansible_inventory(plain_place: Path) -> None:
    path = written(plain_place, {"range": "all:\n  hosts:\n    web[1:2]:\n      ansible_host: 127.0.0.1\n"})["range"]
    assert [t.name for t in load_inventory(str(path)).targets] == ["web1", "web2"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
