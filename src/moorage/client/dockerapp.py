"""Reading a docker-app directory: ``NAME.dockerapp/`` with ``metadata.yml``,
``docker-compose.yml`` and ``parameters.yml`` (and any other files, docker-app's attachments).

Every problem is reported as ``AppInvalid`` whose message starts with ``FILE:LINE:`` (or just
``FILE:`` for a missing or unreadable file), the way compilers report errors, so an editor can
jump to it.

The rules are docker-app's: ``metadata.yml`` needs a ``name`` and a ``version``; every service
of the compose file needs an ``image`` (``docker app push`` pushes images, it does not build
them); ``parameters.yml`` is a mapping, nested mappings flatten to dotted names
(``web: {port: 80}`` is ``web.port``), and ``${name}`` in an image is replaced by its value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXTENSION = ".dockerapp"
METADATA = "metadata.yml"
COMPOSE = "docker-compose.yml"
PARAMETERS = "parameters.yml"
REQUIRED_FILES = (METADATA, COMPOSE, PARAMETERS)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# ``$$`` (a literal ``$``), ``${name}``, ``${name:-default}``, ``${name-default}``, ``$name``.
_VARIABLE_RE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_.]*))")
_MAX_FILE = 256 << 20  # per file: apps carry configuration, not data sets


class AppInvalid(Exception):
    """A docker-app directory or bundle.json that cannot be pushed; the message names file and line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Maintainer:
    name: str
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    image: str  # with the parameters substituted
    line: int  # of ``image:`` in docker-compose.yml


@dataclass(frozen=True, slots=True)
class DockerApp:
    path: Path  # the NAME.dockerapp directory
    name: str
    version: str
    description: str
    maintainers: tuple[Maintainer, ...]
    services: tuple[Service, ...]
    #: Flattened parameters (``web.port``) and their values as text, sorted by name.
    parameters: dict[str, str]
    #: Every regular file of the directory, by path relative to it (``/``-separated).
    files: dict[str, bytes] = field(repr=False)

    @property
    def directory_name(self) -> str:
        """Where the files go inside the invocation image: ``/cnab/app/<this>/``."""
        return f"{self.name}{EXTENSION}"


# --------------------------------------------------------------------------- locating


def find_app(argument: str | Path) -> Path:
    """The docker-app directory ``argument`` names: ``hello.dockerapp``, or ``hello`` for it."""
    path = Path(argument)
    if path.is_dir():
        return path
    with_extension = path.with_name(path.name + EXTENSION)
    if not path.name.endswith(EXTENSION) and with_extension.is_dir():
        return with_extension
    if path.exists():
        raise AppInvalid(
            f"{path}: not a docker-app directory (NAME{EXTENSION}/ with {', '.join(REQUIRED_FILES)})"
        )
    raise AppInvalid(f"{path}: no such docker-app directory or bundle.json")


# --------------------------------------------------------------------------- YAML with lines


@dataclass(frozen=True, slots=True)
class YamlFile:
    """A parsed YAML document that remembers where each value came from."""

    path: Path
    data: Any
    root: yaml.Node | None

    def line(self, *keys: str | int) -> int:
        """1-based line of the value at ``keys`` (or of the deepest existing parent)."""
        node = self.root
        if node is None:
            return 1
        for key in keys:
            child = _child(node, key)
            if child is None:
                break
            node = child
        return int(node.start_mark.line) + 1

    def key_line(self, *keys: str) -> int:
        """1-based line of the last key of ``keys`` itself (where ``name:`` is written)."""
        node = self.root
        for i, key in enumerate(keys):
            if not isinstance(node, yaml.MappingNode):
                break
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    if i == len(keys) - 1:
                        return int(k.start_mark.line) + 1
                    node = v
                    break
            else:
                break
        return self.line(*keys)

    def error(self, message: str, *keys: str | int) -> AppInvalid:
        return AppInvalid(f"{self.path}:{self.line(*keys)}: {message}")


def _child(node: yaml.Node, key: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode) and isinstance(key, str):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v  # type: ignore[no-any-return]
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return node.value[key]  # type: ignore[no-any-return]
    return None


def read_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > _MAX_FILE:
            raise AppInvalid(f"{path}: larger than {_MAX_FILE >> 20} MiB")
        return path.read_bytes()
    except FileNotFoundError:
        raise AppInvalid(f"{path}: missing") from None
    except IsADirectoryError:
        raise AppInvalid(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise AppInvalid(f"{path}: cannot read it ({exc.strerror or exc})") from None


def load_yaml(path: Path, content: bytes | None = None) -> YamlFile:
    """Parse one YAML document; syntax errors become ``AppInvalid("FILE:LINE:COLUMN: problem")``."""
    raw = read_file(path) if content is None else content
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise AppInvalid(f"{path}:{line}: not UTF-8 text") from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = exc.problem or exc.context or "invalid YAML"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise AppInvalid(f"{where}: invalid YAML: {problem}{context}") from None
    except yaml.YAMLError as exc:
        raise AppInvalid(f"{path}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return YamlFile(path, data, root)


# --------------------------------------------------------------------------- the three files


def _scalar_text(doc: YamlFile, value: Any, *keys: str | int) -> str:
    """A scalar as written (``version: 1.10`` stays ``1.10``, not the float 1.1)."""
    if isinstance(value, dict | list):
        raise doc.error(f"{'.'.join(str(k) for k in keys)} must be a string, not a {_kind(value)}", *keys)
    node = doc.root
    for key in keys:
        node = _child(node, key) if node is not None else None
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    return "" if value is None else str(value)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return type(value).__name__


def _metadata(doc: YamlFile) -> tuple[str, str, str, tuple[Maintainer, ...]]:
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error(f"expected a mapping with name and version, found a {_kind(data)}")
    for key in ("name", "version"):
        if data.get(key) in (None, ""):
            raise AppInvalid(f"{doc.path}:{doc.line()}: {key} is required")
    name = _scalar_text(doc, data["name"], "name")
    if not _NAME_RE.match(name):
        raise doc.error(
            f"name {name!r} must be letters, digits, '.', '_' or '-' (it names {name}{EXTENSION}/ "
            "in the invocation image)",
            "name",
        )
    version = _scalar_text(doc, data["version"], "version")
    if any(c.isspace() for c in version):
        raise doc.error(f"version {version!r} must not contain spaces", "version")
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise doc.error(f"description must be a string, not a {_kind(description)}", "description")
    maintainers_value = data.get("maintainers")
    maintainers: list[Maintainer] = []
    if maintainers_value is not None:
        if not isinstance(maintainers_value, list):
            raise doc.error(f"maintainers must be a list, not a {_kind(maintainers_value)}", "maintainers")
        for i, m in enumerate(maintainers_value):
            if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not m["name"]:
                raise doc.error("each maintainer needs a name (and may have an email)", "maintainers", i)
            email = m.get("email")
            if email is not None and not isinstance(email, str):
                raise doc.error("a maintainer's email must be a string", "maintainers", i, "email")
            maintainers.append(Maintainer(m["name"], email or None))
    return name, version, description or "", tuple(maintainers)


def _flatten(doc: YamlFile, value: Any, prefix: str, keys: tuple[str, ...], out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str) or not k or "$" in k:
                raise doc.error(f"parameter name {k!r} must be a non-empty string", *keys)
            _flatten(doc, v, f"{prefix}{k}.", (*keys, k), out)
        return
    name = prefix[:-1]
    if isinstance(value, list):
        raise doc.error(f"parameter {name} is a list; parameters are strings, numbers or booleans", *keys)
    if isinstance(value, bool):
        out[name] = "true" if value else "false"
    elif value is None:
        out[name] = ""
    else:
        out[name] = _scalar_text(doc, value, *keys)


def _parameters(doc: YamlFile) -> dict[str, str]:
    if doc.data is None:
        return {}
    if not isinstance(doc.data, dict):
        raise doc.error(f"expected a mapping of parameter names to values, found a {_kind(doc.data)}")
    out: dict[str, str] = {}
    _flatten(doc, doc.data, "", (), out)
    return dict(sorted(out.items()))


def interpolate(text: str, parameters: dict[str, str]) -> str:
    """Substitute ``${name}``, ``${name:-default}``, ``${name-default}``, ``$name`` and ``$$``.

    Raises ``KeyError(name)`` for a parameter that is not defined and has no default, and
    ``ValueError`` for a malformed ``${...}``.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        named = match.group("named")
        if named is not None:
            if named not in parameters:
                raise KeyError(named)
            return parameters[named]
        expression = match.group("braced")
        for separator in (":-", "-"):
            if separator in expression:
                name, default = expression.split(separator, 1)
                value = parameters.get(name)
                if value is None or (separator == ":-" and value == ""):
                    return default
                return value
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", expression):
            raise ValueError(f"${{{expression}}} is not a valid parameter reference")
        if expression not in parameters:
            raise KeyError(expression)
        return parameters[expression]

    return _VARIABLE_RE.sub(replace, text)


def _services(doc: YamlFile, parameters: dict[str, str], parameters_file: Path) -> tuple[Service, ...]:
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error(f"expected a compose file (a mapping with services), found a {_kind(data)}")
    services = data.get("services")
    if not isinstance(services, dict) or not services:
        raise AppInvalid(f"{doc.path}:{doc.line('services')}: services must be a non-empty mapping")
    out = []
    for name, service in services.items():
        if not isinstance(name, str) or not name:
            raise doc.error(f"service name {name!r} must be a non-empty string", "services")
        if not isinstance(service, dict):
            raise doc.error(f"service {name} must be a mapping, not a {_kind(service)}", "services", name)
        image = service.get("image")
        if image is None or image == "":
            raise AppInvalid(
                f"{doc.path}:{doc.key_line('services', name)}: service {name} has no image "
                "(docker app push needs an image for every service; it does not build them)"
            )
        if not isinstance(image, str):
            raise doc.error(f"service {name}: image must be a string", "services", name, "image")
        try:
            resolved = interpolate(image, parameters)
        except KeyError as exc:
            raise doc.error(
                f"service {name}: image {image!r} uses ${{{exc.args[0]}}}, which {parameters_file.name} "
                "does not define",
                "services",
                name,
                "image",
            ) from None
        except ValueError as exc:
            raise doc.error(f"service {name}: image {image!r}: {exc}", "services", name, "image") from None
        if not resolved.strip():
            raise doc.error(
                f"service {name}: image {image!r} is empty once parameters are substituted",
                "services",
                name,
                "image",
            )
        out.append(Service(name, resolved.strip(), doc.line("services", name, "image")))
    return tuple(sorted(out, key=lambda s: s.name))


def _all_files(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise AppInvalid(
                f"{path}: symbolic links are not packed into the invocation image; copy the file"
            )
        if path.is_file():
            files[path.relative_to(root).as_posix()] = read_file(path)
    return files


def load_docker_app(argument: str | Path) -> DockerApp:
    """Read and check a docker-app directory; raise ``AppInvalid`` naming the file and line."""
    root = find_app(argument)
    for name in REQUIRED_FILES:
        if not (root / name).is_file():
            raise AppInvalid(
                f"{root / name}: missing (a docker-app directory needs {', '.join(REQUIRED_FILES)})"
            )
    files = _all_files(root)
    metadata = load_yaml(root / METADATA, files[METADATA])
    name, version, description, maintainers = _metadata(metadata)
    parameters = _parameters(load_yaml(root / PARAMETERS, files[PARAMETERS]))
    services = _services(load_yaml(root / COMPOSE, files[COMPOSE]), parameters, root / PARAMETERS)
    return DockerApp(root, name, version, description, maintainers, services, parameters, files)
