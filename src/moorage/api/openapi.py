"""Print the management API's OpenAPI document: ``python -m moorage.api.openapi > docs/openapi.json``."""

from __future__ import annotations

import json
import sys

from moorage.api.app import openapi_document


def render() -> str:
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
