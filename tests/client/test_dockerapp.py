"""Reading docker-app directories: the good one, and each kind of bad file with FILE:LINE in the message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from moorage.client.dockerapp import AppInvalid, interpolate, load_docker_app

METADATA = """\
version: 0.1.0
name: hello
description: "a hello world app"
maintainers:
  - name: Jane Developer
    email: jane@example.com
  - name: John Developer
"""
COMPOSE = """\
version: "3.6"
services:
  web:
    image: registry.example.com/lab/web:${web.tag}
    ports:
      - ${web.port}:80
  worker:
    image: lab/worker:1
"""
PARAMETERS = """\
web:
  port: 8080
  tag: "1.10"
debug: true
"""


def write_app(root: Path, name: str = "hello", **files: str) -> Path:
    app = root / f"{name}.dockerapp"
    app.mkdir(parents=True)
    contents = {"metadata.yml": METADATA, "docker-compose.yml": COMPOSE, "parameters.yml": PARAMETERS}
    contents.update({k.replace("_", "-").replace("-yml", ".yml"): v for k, v in files.items()})
    for filename, text in contents.items():
        if text is not None:
            (app / filename).write_text(text)
    return app


def error_of(path: Path | str) -> str:
    with pytest.raises(AppInvalid) as info:
        load_docker_app(path)
    return info.value.message


def test_reads_a_docker_app(tmp_path: Path) -> None:
    app_dir = write_app(tmp_path)
    (app_dir / "config").mkdir()
    (app_dir / "config" / "nginx.conf").write_text("server {}\n")
    app = load_docker_app(app_dir)
    assert (app.name, app.version, app.description) == ("hello", "0.1.0", "a hello world app")
    assert [(m.name, m.email) for m in app.maintainers] == [
        ("Jane Developer", "jane@example.com"),
        ("John Developer", None),
    ]
    assert [(s.name, s.image, s.line) for s in app.services] == [
        ("web", "registry.example.com/lab/web:1.10", 4),
        ("worker", "lab/worker:1", 8),
    ]
    # Nested parameters flatten to dotted names; values keep their spelling (1.10 stays 1.10).
    assert app.parameters == {"debug": "true", "web.port": "8080", "web.tag": "1.10"}
    assert sorted(app.files) == ["config/nginx.conf", "docker-compose.yml", "metadata.yml", "parameters.yml"]
    assert app.files["metadata.yml"] == METADATA.encode()
    assert app.directory_name == "hello.dockerapp"


def test_the_name_without_the_extension_finds_the_directory(tmp_path: Path) -> None:
    write_app(tmp_path)
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert load_docker_app("hello").name == "hello"
    finally:
        os.chdir(cwd)


def test_unquoted_numeric_version_keeps_its_text(tmp_path: Path) -> None:
    app = load_docker_app(write_app(tmp_path, metadata_yml="name: hello\nversion: 1.10\n"))
    assert app.version == "1.10"


@pytest.mark.parametrize("missing", ["metadata.yml", "docker-compose.yml", "parameters.yml"])
def test_missing_file_is_named(tmp_path: Path, missing: str) -> None:
    app = write_app(tmp_path)
    (app / missing).unlink()
    message = error_of(app)
    assert message.startswith(f"{app / missing}: missing")
    assert "metadata.yml, docker-compose.yml, parameters.yml" in message


def test_no_such_directory(tmp_path: Path) -> None:
    assert error_of(tmp_path / "nothing").endswith("no such docker-app directory or bundle.json")


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    compose = 'version: "3.6"\nservices:\n  web:\n    image: [unclosed\n  worker:\n    image: x\n'
    app = write_app(tmp_path, docker_compose_yml=compose)
    message = error_of(app)
    assert message.startswith(f"{app / 'docker-compose.yml'}:5:")
    assert "invalid YAML" in message


def test_tab_indentation_is_a_yaml_error_with_its_line(tmp_path: Path) -> None:
    app = write_app(tmp_path, metadata_yml="name: hello\n\tversion: 1\n")
    message = error_of(app)
    assert message.startswith(f"{app / 'metadata.yml'}:2:")


def test_two_documents_in_one_file(tmp_path: Path) -> None:
    app = write_app(tmp_path, parameters_yml="a: 1\n---\nb: 2\n")
    assert error_of(app).startswith(f"{app / 'parameters.yml'}:")


@pytest.mark.parametrize(
    ("metadata", "line", "text"),
    [
        ("name: hello\n", 1, "version is required"),
        ("version: 1.0.0\ndescription: x\n", 1, "name is required"),
        ("- name: hello\n", 1, "expected a mapping"),
        ("name: hello\nversion: 1.0.0\nmaintainers: jane\n", 3, "maintainers must be a list"),
        ("name: hello\nversion: 1.0.0\nmaintainers:\n  - email: a@b\n", 4, "each maintainer needs a name"),
        ("name: hello world\nversion: 1.0.0\n", 1, "name 'hello world' must be"),
        ("name: hello\nversion:\n  major: 1\n", 3, "version must be a string"),
        ("name: hello\nversion: 1.0.0\ndescription:\n  - x\n", 4, "description must be a string"),
    ],
)
def test_bad_metadata_names_the_line(tmp_path: Path, metadata: str, line: int, text: str) -> None:
    app = write_app(tmp_path, metadata_yml=metadata)
    message = error_of(app)
    assert message.startswith(f"{app / 'metadata.yml'}:{line}: "), message
    assert text in message


@pytest.mark.parametrize(
    ("compose", "line", "text"),
    [
        ('version: "3.6"\n', 1, "services must be a non-empty mapping"),
        ('version: "3.6"\nservices: []\n', 2, "services must be a non-empty mapping"),
        ("services:\n  web:\n    build: .\n  db:\n    image: x\n", 2, "service web has no image"),
        ("services:\n  web:\n    image:\n      - x\n", 4, "image must be a string"),
        ("services:\n  web: nginx\n", 2, "service web must be a mapping"),
        (
            "services:\n  web:\n    image: lab/web:${nope}\n",
            3,
            "uses ${nope}, which parameters.yml does not define",
        ),
        ("services:\n  web:\n    image: lab/web:${bad name}\n", 3, "not a valid parameter reference"),
    ],
)
def test_bad_compose_names_the_line(tmp_path: Path, compose: str, line: int, text: str) -> None:
    app = write_app(tmp_path, docker_compose_yml=compose)
    message = error_of(app)
    assert message.startswith(f"{app / 'docker-compose.yml'}:{line}: "), message
    assert text in message


def test_bad_parameters_name_the_line(tmp_path: Path) -> None:
    app = write_app(tmp_path, parameters_yml="web:\n  ports:\n    - 80\n    - 443\n")
    message = error_of(app)
    assert message.startswith(f"{app / 'parameters.yml'}:3: ")
    assert "web.ports is a list" in message
    app2 = write_app(tmp_path / "b", parameters_yml="- a\n")
    assert error_of(app2).startswith(f"{app2 / 'parameters.yml'}:1: expected a mapping")


def test_empty_parameters_file_is_no_parameters(tmp_path: Path) -> None:
    compose = "services:\n  web:\n    image: lab/web:1\n"
    app = load_docker_app(write_app(tmp_path, parameters_yml="", docker_compose_yml=compose))
    assert app.parameters == {}


def test_not_utf8(tmp_path: Path) -> None:
    app = write_app(tmp_path)
    (app / "metadata.yml").write_bytes(b"name: hello\nversion: \xff\n")
    assert error_of(app) == f"{app / 'metadata.yml'}:2: not UTF-8 text"


def test_symlinks_are_refused(tmp_path: Path) -> None:
    app = write_app(tmp_path)
    (app / "link").symlink_to(app / "metadata.yml")
    assert "symbolic links" in error_of(app)


def test_interpolation() -> None:
    params = {"a": "1", "b.c": "two", "empty": ""}
    assert interpolate("x:${a}-$b.c", params) == "x:1-two"
    assert interpolate("${missing:-dflt}/${empty:-e}/${empty-f}/${missing-g}", params) == "dflt/e//g"
    assert interpolate("cost $$5", params) == "cost $5"
    with pytest.raises(KeyError):
        interpolate("${nope}", params)
