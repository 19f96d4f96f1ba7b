"""Layers applied in order: whiteouts, opaque directories, rewritten package databases, duplicates, storage."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from layerkit import DEBIAN_12_OS_RELEASE, directory, file, inventory

from moorage.scanner.inventory import Component, LayerInventory, merge_layers
from moorage.scanner.inventory.distro import os_component, os_ecosystem, rebase
from moorage.scanner.inventory.models import Distro

CURL = "Package: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 7.88.1-10+deb12u5\nSource: curl\n"
OPENSSL = (
    "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\n"
    "Source: openssl\nVersion: 3.0.11-1~deb12u2\n"
)
OPENSSL_FIXED = OPENSSL.replace("3.0.11-1~deb12u2", "3.0.13-1~deb12u1")
SIX = "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n"
REQUESTS = "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n"
SITE = "usr/lib/python3/dist-packages"


def test_an_image_of_three_layers() -> None:
    base = inventory(
        [
            file("usr/lib/os-release", DEBIAN_12_OS_RELEASE),
            file("var/lib/dpkg/status", f"{CURL}\n{OPENSSL}"),
            file(f"{SITE}/six-1.16.0.dist-info/METADATA", SIX),
            file("app/node_modules/left-pad/package.json", '{"name":"left-pad","version":"1.3.0"}'),
        ],
        digest="sha256:1",
    )
    # no os-release in this layer: its OS packages get a placeholder until the merge
    middle = inventory(
        [
            file("var/lib/dpkg/status", f"{CURL}\n{OPENSSL_FIXED}"),  # apt-get upgrade libssl3
            file(f"{SITE}/.wh.six-1.16.0.dist-info", ""),  # pip uninstall six
            file(f"{SITE}/requests-2.31.0.dist-info/METADATA", REQUESTS),
            file("app/node_modules/.wh..wh..opq", ""),  # rm -rf node_modules && npm ci
            file("app/node_modules/lodash/package.json", '{"name":"lodash","version":"4.17.21"}'),
        ],
        digest="sha256:2",
    )
    top = inventory(
        [
            file("var/lib/dpkg/status", f"{OPENSSL_FIXED}\n"),  # apt-get remove curl
            file(f"{SITE}/requests-2.31.0.dist-info/METADATA", REQUESTS),  # reinstalled, same version
            file("srv/venv/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA", REQUESTS),
            directory("opt"),
        ],
        digest="sha256:3",
    )
    assert [c.ecosystem for c in middle.components if c.purl_type == "deb"] == ["Debian", "Debian"]
    image = merge_layers([base, middle, top])
    assert image.distro is not None
    assert image.distro.ecosystem == "Debian:12"
    assert image.layers == ["sha256:1", "sha256:2", "sha256:3"]
    assert [(c.ecosystem, c.name, c.version, c.layer, c.path) for c in image.components] == [
        ("Debian:12", "libssl3", "3.0.13-1~deb12u1", "sha256:2", "var/lib/dpkg/status"),
        ("PyPI", "requests", "2.31.0", "sha256:3",
         "srv/venv/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA"),
        ("PyPI", "requests", "2.31.0", "sha256:2", f"{SITE}/requests-2.31.0.dist-info/METADATA"),
        ("npm", "lodash", "4.17.21", "sha256:2", "app/node_modules/lodash/package.json"),
    ]  # fmt: skip
    [libssl] = [c for c in image.components if c.name == "libssl3"]
    assert libssl.purl == "pkg:deb/debian/libssl3@3.0.13-1~deb12u1?arch=amd64&distro=debian-12"
    assert libssl.source_name == "openssl"
    assert image.warnings == []


def test_a_package_kept_across_rewrites_keeps_the_layer_that_introduced_it() -> None:
    one = inventory(
        [file("etc/os-release", DEBIAN_12_OS_RELEASE), file("var/lib/dpkg/status", CURL)], "sha256:1"
    )
    two = inventory([file("var/lib/dpkg/status", f"{CURL}\n{OPENSSL}")], "sha256:2")
    image = merge_layers([one, two])
    assert [(c.name, c.layer) for c in image.components] == [("curl", "sha256:1"), ("libssl3", "sha256:2")]


def test_removed_then_reinstalled_is_introduced_by_the_reinstalling_layer() -> None:
    one = inventory([file("var/lib/dpkg/status", CURL)], "sha256:1")
    two = inventory([file("var/lib/dpkg/status", "")], "sha256:2")
    three = inventory([file("var/lib/dpkg/status", CURL)], "sha256:3")
    assert merge_layers([one, two]).components == []
    image = merge_layers([one, two, three])
    assert [(c.name, c.layer, c.ecosystem) for c in image.components] == [("curl", "sha256:3", "Debian")]
    assert image.warnings == ["no os-release in the image: OS packages have no versioned ecosystem"]


def test_duplicate_os_packages_in_several_databases_are_reported_once() -> None:
    one = inventory(
        [
            file("etc/os-release", DEBIAN_12_OS_RELEASE),
            file("var/lib/dpkg/status", CURL),
            file("var/lib/dpkg/status.d/curl", CURL),
        ],
        "sha256:1",
    )
    image = merge_layers([one])
    assert [(c.name, c.path) for c in image.components] == [("curl", "var/lib/dpkg/status")]


def test_whiteout_of_a_parent_directory_and_opaque_root() -> None:
    one = inventory(
        [
            file("opt/app/lib/a.jar", b""),  # unreadable jar: a warning, no component
            file("opt/app/node_modules/x/package.json", '{"name":"x","version":"1.0.0"}'),
            file("usr/lib/node_modules/y/package.json", '{"name":"y","version":"2.0.0"}'),
        ],
        "sha256:1",
    )
    two = inventory([file("opt/.wh.app", "")], "sha256:2")
    assert [c.name for c in merge_layers([one, two]).components] == ["y"]
    root_opaque = inventory([file(".wh..wh..opq", "")], "sha256:3")
    assert merge_layers([one, root_opaque]).components == []


def test_layer_inventories_round_trip_through_json() -> None:
    inv = inventory(
        [
            file("etc/os-release", DEBIAN_12_OS_RELEASE),
            file("var/lib/dpkg/status", f"{CURL}\n{OPENSSL}"),
            file("x/.wh.y", ""),
            file("z/.wh..wh..opq", ""),
            file("bad.jar", "not a zip"),
        ],
        "sha256:1",
    )
    text = inv.to_json()
    assert json.loads(text)["removed_paths"] == ["x/y"]
    again = LayerInventory.from_json(text)
    assert again == inv
    assert Component.from_json(inv.components[0].to_json()) == inv.components[0]
    assert merge_layers([again]).components == merge_layers([inv]).components


SEG = st.sampled_from(["a", "b", "c", "site-packages", "node_modules"])
PATHS = st.lists(SEG, min_size=1, max_size=4).map("/".join)


@given(
    installed=st.lists(PATHS, min_size=1, max_size=6, unique=True),
    removed=st.lists(PATHS, max_size=3),
    opaque=st.lists(PATHS, max_size=2),
)
def test_whiteouts_remove_exactly_the_paths_under_them(
    installed: list[str], removed: list[str], opaque: list[str]
) -> None:
    def component(path: str) -> Component:
        return Component("p", "1", "PyPI", "pkg:pypi/p@1", None, "sha256:1", f"{path}/p-1.dist-info/METADATA")

    lower = LayerInventory(
        digest="sha256:1",
        components=[component(p) for p in installed],
        written_paths=[component(p).path for p in installed],
    )
    upper = LayerInventory(digest="sha256:2", removed_paths=removed, opaque_dirs=opaque)
    survivors = {c.path for c in merge_layers([lower, upper]).components}

    def under(path: str, prefix: str) -> bool:
        return path == prefix or path.startswith(prefix + "/")

    expected = {
        component(p).path
        for p in installed
        if not any(under(component(p).path, r) for r in removed)
        and not any(under(component(p).path, o) for o in opaque)
    }
    assert survivors == expected


_DISTROS = st.one_of(
    st.none(),
    st.builds(
        lambda id_, version: Distro(id_, version, os_ecosystem(Distro(id_, version, None))),
        st.sampled_from(["debian", "ubuntu", "alpine", "almalinux", "rocky", "fedora", "wolfi"]),
        st.sampled_from(["", "11", "12", "3.19", "22.04", "9.3", "rolling"]),
    ),
)


@given(
    st.sampled_from(["deb", "apk", "rpm"]),
    st.text("abcz+-.0123456789", min_size=1, max_size=12),
    st.sampled_from(["1.0-1", "2:3.0~rc1-2+deb12u1", "1.2.3-r4"]),
    st.sampled_from([None, "amd64", "arm64", "x86_64"]),
    _DISTROS,
    _DISTROS,
)
def test_rebase_is_the_component_as_seen_under_the_final_distribution(
    purl_type: str, name: str, version: str, arch: str | None, first: Distro | None, final: Distro | None
) -> None:
    """Whatever distribution a layer saw (or none), rebasing gives what the final one would have
    made; the shortcut that skips re-parsing the purl must agree with building it again."""

    def made(distro: Distro | None) -> Component:
        return os_component(
            purl_type, name=name, version=version, arch=arch, source_name=None, source_version=None,
            layer="sha256:l", path="var/lib/dpkg/status", distro=distro,
        )  # fmt: skip

    rebased, expected = rebase(made(first), final), made(final)
    assert (rebased.ecosystem, rebased.purl) == (expected.ecosystem, expected.purl)
    assert rebase(expected, final) is expected  # already right: returned as it is
