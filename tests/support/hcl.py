"""Static checks of Terraform modules parsed with python-hcl2 (no terraform needed).

`load_module(directory)` parses every .tf file of one module; the `check_*`
functions return human-readable problems ("file:line: what is wrong"), an
empty list meaning the module is fine:

* `check_references`   var./local./module.X.Y/data.T.N/<type>.<name> resolve
                       in the module that uses them (and aws_* attributes exist)
* `check_module_calls` every call passes only declared variables, and all
                       variables without a default
* `check_provider_schema` every aws_* resource/data block uses only arguments and
                       blocks of the provider schema (tests/schema/*.json), sets
                       every required one, nothing deprecated or removed in 6.x,
                       and lifecycle.ignore_changes names real arguments
* `check_tfvars`       terraform.tfvars only sets declared variables
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import hcl2

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema" / "aws_provider_5.100.json"
REGENERATE = "uv run python tests/schema/regenerate.py"

MARKERS = {"__is_block__", "__comments__", "__inline_comments__", "__start_line__", "__end_line__"}
RESOURCE_META = {"count", "for_each", "depends_on", "lifecycle", "provider", "provisioner", "connection"}
DATA_META = {"count", "for_each", "depends_on", "lifecycle", "provider"}
MODULE_META = {"source", "version", "count", "for_each", "depends_on", "providers"}
DYNAMIC_ARGUMENTS = {"for_each", "iterator", "labels", "content"}


class HclParseError(AssertionError):
    pass


@dataclass
class Block:
    kind: str
    labels: tuple[str, ...]
    body: dict
    file: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def address(self) -> str:
        if self.kind == "resource":
            return ".".join(self.labels)
        return ".".join((self.kind, *self.labels))


@dataclass
class Module:
    path: Path
    files: dict[Path, dict] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    locals: dict[str, Path] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Block]:
        return [block for block in self.blocks if block.kind == kind]

    @property
    def variables(self) -> dict[str, Block]:
        return {block.labels[0]: block for block in self.of_kind("variable")}

    @property
    def outputs(self) -> dict[str, Block]:
        return {block.labels[0]: block for block in self.of_kind("output")}

    @property
    def resources(self) -> dict[tuple[str, str], Block]:
        return {block.labels: block for block in self.of_kind("resource")}

    @property
    def data(self) -> dict[tuple[str, str], Block]:
        return {block.labels: block for block in self.of_kind("data")}

    @property
    def module_calls(self) -> dict[str, Block]:
        return {block.labels[0]: block for block in self.of_kind("module")}


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------
# python-hcl2 8.x serializes every document through one SerializationContext
# (a mutable default argument that its rules save and restore around `${...}`).
# Two threads parsing at once can leave it stuck "inside a ${...} string", and
# from then on every list in the process parses as raw text ('["a"]'). The
# emulated stacks parse in threads, so every parse in the tests takes this lock.
_PARSE_LOCK = threading.Lock()


def loads(text: str) -> dict:
    """python-hcl2's dict for HCL text (the only way tests call python-hcl2).

    Each distinct text is parsed once per process (python-hcl2 takes ~10 ms per
    file, and every check of every answer set reads the same files); callers
    get their own copy to change.
    """
    return copy.deepcopy(_parsed(text))


@cache
def _parsed(text: str) -> dict:
    with _PARSE_LOCK:
        return hcl2.loads(text)


def parse_file(path: Path) -> dict:
    """python-hcl2's dict for one file; HclParseError names the file on failure."""
    try:
        return loads(path.read_text())
    except Exception as error:
        raise HclParseError(f"{path}: python-hcl2 cannot parse it: {type(error).__name__}: {error}") from None


def unquote(value: object) -> object:
    """python-hcl2 keeps the quotes of string literals and block labels; drop them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def unquote_tree(value: object) -> object:
    if isinstance(value, dict):
        return {unquote(key): unquote_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unquote_tree(item) for item in value]
    return unquote(value)


def blocks(document: dict, kind: str) -> Iterator[tuple[str, str, dict]]:
    """(type, name, body) of every `resource` or `data` block of a parsed file."""
    for entry in document.get(kind, []):
        for block_type, named in entry.items():
            for name, body in named.items():
                yield unquote(block_type), unquote(name), body


def _line_of(text: str, kind: str, labels: tuple[str, ...]) -> int:
    pattern = r"^[ \t]*" + re.escape(kind) + "".join(r'\s+"?' + re.escape(label) + '"?' for label in labels)
    match = re.search(pattern + r"\s*\{", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else 1


def _labelled(kind: str, entries: list[dict], depth: int) -> Iterator[tuple[tuple[str, ...], dict]]:
    for entry in entries:
        yield from _unwrap(entry, depth, ())


def _unwrap(entry: dict, depth: int, labels: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict]]:
    if depth == 0:
        yield labels, entry
        return
    for label, inner in entry.items():
        if label not in MARKERS:
            yield from _unwrap(inner, depth - 1, (*labels, unquote(label)))


LABEL_DEPTH = {"resource": 2, "data": 2, "module": 1, "variable": 1, "output": 1, "provider": 1, "check": 1}


def load_module(directory: Path) -> Module:
    module = Module(path=Path(directory))
    for path in sorted(Path(directory).glob("*.tf")):
        parsed = parse_file(path)
        module.files[path] = parsed
        text = path.read_text()
        for kind, entries in parsed.items():
            if kind == "locals":
                for entry in entries:
                    for name in entry:
                        if name not in MARKERS:
                            module.locals[name] = path
                continue
            depth = LABEL_DEPTH.get(kind, 0)
            for labels, body in _labelled(kind, entries, depth):
                module.blocks.append(Block(kind, labels, body, path, _line_of(text, kind, labels)))
    return module


@cache
def _cached_module(directory: Path) -> Module:
    return load_module(directory)


# ---------------------------------------------------------------------------
# Expressions -> references
# ---------------------------------------------------------------------------
def expression_fragments(value: object) -> Iterator[str]:
    """Every expression text in a python-hcl2 value, string literals blanked out."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in MARKERS:
                continue
            if isinstance(key, str) and key.startswith("${"):
                yield from expression_fragments(key)
            yield from expression_fragments(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from expression_fragments(inner)
    elif isinstance(value, str):
        if value.startswith("${") and value.endswith("}"):
            yield from _scan_expression(value[2:-1])
        elif value.startswith('"') and value.endswith('"'):
            body = value[1:-1]
            heredoc = re.match(r"<<-?([A-Za-z][\w.-]*)\r?\n", body)
            if heredoc:
                body = body[heredoc.end() :].rsplit(heredoc.group(1), 1)[0]
            yield from _scan_template(body)
        else:  # a bare identifier/keyword, e.g. in ignore_changes
            yield value


def _scan_template(text: str) -> Iterator[str]:
    """Yield the interpolations (${...} and %{...}) of a template string."""
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
        elif text.startswith(("$${", "%%{"), index):
            index += 3
        elif text.startswith(("${", "%{"), index):
            end = _matching_brace(text, index + 2)
            yield from _scan_expression(text[index + 2 : end])
            index = end + 1
        else:
            index += 1


def _matching_brace(text: str, start: int) -> int:
    depth, index = 1, start
    while index < len(text):
        char = text[index]
        if char == '"':
            index = _string_end(text, index + 1)
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return len(text)


def _string_end(text: str, start: int) -> int:
    """Index of the closing quote of a string literal that starts at `start`."""
    index = start
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text.startswith(("$${", "%%{"), index):
            index += 3
            continue
        if text.startswith(("${", "%{"), index):
            index = _matching_brace(text, index + 2) + 1
            continue
        if text[index] == '"':
            return index
        index += 1
    return len(text)


def _scan_expression(text: str) -> Iterator[str]:
    """Yield `text` with string literals replaced by "", then their interpolations."""
    out, nested, index = [], [], 0
    while index < len(text):
        char = text[index]
        if char == '"':
            end = _string_end(text, index + 1)
            nested.append(text[index + 1 : end])
            out.append('""')
            index = end + 1
            continue
        heredoc = re.match(r"<<-?([A-Za-z][\w.-]*)\r?\n", text[index:])
        if heredoc:
            terminator = re.compile(r"^\s*" + re.escape(heredoc.group(1)) + r"\s*$", re.MULTILINE)
            body_start = index + heredoc.end()
            end = terminator.search(text, body_start)
            body_end = end.start() if end else len(text)
            nested.append(text[body_start:body_end])
            out.append('""')
            index = end.end() if end else len(text)
            continue
        out.append(char)
        index += 1
    yield "".join(out)
    for literal in nested:
        yield from _scan_template(literal)


@dataclass(frozen=True)
class Reference:
    root: str
    steps: tuple[str, ...]  # attribute names; "[]" for an index or splat

    def names(self) -> list[str]:
        return [step for step in self.steps if step != "[]"]

    def __str__(self) -> str:
        return ".".join((self.root, *self.names()))


_IDENTIFIER = re.compile(r"(?<![\w.\-])[A-Za-z_][\w-]*")


def references(fragment: str) -> Iterator[Reference]:
    """Traversals (root.attr[index].attr ...) of one expression fragment."""
    for match in _IDENTIFIER.finditer(fragment):
        index, steps = match.end(), []
        while index < len(fragment):
            rest = fragment[index:]
            attribute = re.match(r"\s*\.\s*([A-Za-z_][\w-]*)", rest)
            if attribute:
                steps.append(attribute.group(1))
                index += attribute.end()
                continue
            splat = re.match(r"\s*(\.\s*\*|\[\s*\*\s*\])", rest)
            if splat:
                steps.append("[]")
                index += splat.end()
                continue
            if rest.lstrip().startswith("[") and steps:
                start = index + rest.index("[")
                end = _matching_bracket(fragment, start)
                steps.append("[]")
                index = end + 1
                continue
            break
        if fragment[index:].lstrip().startswith("(") and not steps:
            continue  # a function call
        yield Reference(match.group(0), tuple(steps))


def _matching_bracket(text: str, start: int) -> int:
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "[":
            depth += 1
        elif text[index] == "]":
            depth -= 1
            if depth == 0:
                return index
    return len(text)


def block_references(body: dict, skip: set[str] = frozenset()) -> Iterator[Reference]:
    for key, value in body.items():
        if key in MARKERS or key in skip:
            continue
        for fragment in expression_fragments(value):
            yield from references(fragment)


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------
def local_source(module: Module, call: Block) -> Path | None:
    source = unquote(str(call.body.get("source", "")))
    if source.startswith(("./", "../")):
        return (module.path / source).resolve()
    return None


def check_references(module: Module, schema: dict | None = None) -> list[str]:
    problems = []
    variables, calls = module.variables, module.module_calls
    resources, data = module.resources, module.data
    resource_types = {type_name for type_name, _ in resources}
    for block in module.blocks:
        if block.kind in ("terraform", "moved", "import", "removed"):
            continue
        skip = {"lifecycle"} if block.kind == "resource" else set()
        seen = set()
        for ref in block_references(block.body, skip):
            problem = _reference_problem(
                module, ref, variables, calls, resources, data, resource_types, schema
            )
            if problem and (problem not in seen):
                seen.add(problem)
                problems.append(f"{block.where}: {block.kind} {'.'.join(block.labels)}: {problem}")
    for path, parsed in module.files.items():
        text = path.read_text()
        for entry in parsed.get("locals", []):
            for name, value in entry.items():
                if name in MARKERS:
                    continue
                match = re.search(rf"^[ \t]*{re.escape(name)}\s*=", text, re.MULTILINE)
                line = text.count("\n", 0, match.start()) + 1 if match else 1
                for ref in block_references({name: value}):
                    problem = _reference_problem(
                        module, ref, variables, calls, resources, data, resource_types, schema
                    )
                    if problem:
                        problems.append(f"{path}:{line}: local.{name}: {problem}")
    return sorted(set(problems), key=problems.index)


def _reference_problem(module, ref, variables, calls, resources, data, resource_types, schema) -> str | None:
    names = ref.names()
    if ref.root == "var":
        if names and names[0] not in variables:
            return f"var.{names[0]} is not declared in {module.path.name}/ (no variable block)"
    elif ref.root == "local":
        if names and names[0] not in module.locals:
            return f"local.{names[0]} is not defined in any locals block of {module.path.name}/"
    elif ref.root == "module":
        if not names:
            return None
        call = calls.get(names[0])
        if call is None:
            return f"module.{names[0]} is not called in {module.path.name}/"
        source = local_source(module, call)
        if len(names) > 1 and source is not None and source.is_dir():
            callee = _cached_module(source)
            if names[1] not in callee.outputs:
                return f"module.{names[0]}.{names[1]}: {source.name}/ declares no output {names[1]!r}"
    elif ref.root == "data":
        if len(names) >= 2:
            key = (names[0], names[1])
            if key not in data:
                return f"data.{names[0]}.{names[1]} is not declared in {module.path.name}/"
            return _attribute_problem(f"data.{names[0]}.{names[1]}", schema, "data_source_schemas", ref, 2)
    elif ref.root in resource_types or ref.root.startswith("aws_"):
        if not names:
            return None
        if (ref.root, names[0]) not in resources:
            return f"resource {ref.root}.{names[0]} is not declared in {module.path.name}/"
        return _attribute_problem(f"{ref.root}.{names[0]}", schema, "resource_schemas", ref, 1)
    return None


def _attribute_problem(
    address: str, schema: dict | None, section: str, ref: Reference, skip: int
) -> str | None:
    """The first attribute read from an aws_* object must exist and not be deprecated."""
    if schema is None:
        return None
    type_name = address.split(".")[-2]
    block = schema[section].get(type_name)
    if block is None:
        return None  # reported by check_provider_schema
    steps = list(ref.steps)
    # drop the steps naming the object (type and name, or data/type/name), keep the rest
    names_seen = 0
    while steps and names_seen < skip:
        if steps.pop(0) != "[]":
            names_seen += 1
    while steps and steps[0] == "[]":
        steps.pop(0)
    if not steps:
        return None
    attribute = steps[0]
    if attribute in block["attributes"]:
        if block["attributes"][attribute].get("deprecated"):
            return f"{address}.{attribute} is deprecated in hashicorp/aws 5.100 (gone or renamed in 6.x)"
        return None
    if attribute in block["block_types"]:
        return None
    return f"{address} has no attribute {attribute!r} in hashicorp/aws 5.100"


def check_module_calls(module: Module) -> list[str]:
    problems = []
    for name, call in module.module_calls.items():
        source = local_source(module, call)
        if source is None:
            continue
        if not source.is_dir() or not any(source.glob("*.tf")):
            problems.append(f"{call.where}: module {name}: source {source} has no .tf files")
            continue
        callee = _cached_module(source)
        declared = callee.variables
        passed = {key for key in call.body if key not in MARKERS and key not in MODULE_META}
        for unknown in sorted(passed - set(declared)):
            problems.append(
                f"{call.where}: module {name} passes {unknown!r}, not a variable of {source.name}/"
            )
        required = {var for var, block in declared.items() if "default" not in block.body}
        for missing in sorted(required - passed):
            problems.append(
                f"{call.where}: module {name} does not pass required variable {missing!r} of {source.name}/"
            )
    return problems


def check_tfvars(module: Module) -> list[str]:
    problems = []
    for path in sorted(module.path.glob("*.tfvars")):
        declared = module.variables
        for key in parse_file(path):
            if key not in MARKERS and key not in declared:
                problems.append(f"{path}: sets {key!r}, which {module.path.name}/ does not declare")
    return problems


@cache
def load_schema(path: Path = SCHEMA_FILE) -> dict:
    return json.loads(path.read_text())


def check_provider_schema(module: Module, schema: dict) -> list[str]:
    problems: list[str] = []
    for block in module.blocks:
        if block.kind not in ("resource", "data") or not block.labels[0].startswith("aws_"):
            continue
        type_name = block.labels[0]
        section = "resource_schemas" if block.kind == "resource" else "data_source_schemas"
        type_schema = schema[section].get(type_name)
        where = f"{block.where}: {block.address}"
        if type_schema is None:
            problems.append(
                f"{where}: {block.kind} type {type_name} is not in {SCHEMA_FILE.name}; "
                f"if it is a real hashicorp/aws type, run `{REGENERATE}`"
            )
            continue
        if type_schema.get("removed_in_6_type"):
            problems.append(f"{where}: {type_name} was removed in hashicorp/aws 6.0")
        meta = RESOURCE_META if block.kind == "resource" else DATA_META
        _check_body(block.body, type_schema, where, meta, problems)
        _check_ignore_changes(block.body, type_schema, where, problems)
        for argument, why in type_schema.get("removed_in_6", {}).items():
            if argument in block.body or _dynamic_names(block.body) & {argument}:
                problems.append(f"{where}: {argument} is removed in hashicorp/aws 6.x ({why})")
    return problems


def _check_ignore_changes(body: dict, schema: dict, where: str, problems: list[str]) -> None:
    """lifecycle.ignore_changes may only name arguments the resource type has."""
    for lifecycle in body.get("lifecycle", []):
        ignored = lifecycle.get("ignore_changes", [])
        for entry in ignored if isinstance(ignored, list) else []:
            name = re.match(r"^(?:\$\{)?([A-Za-z_][\w-]*)", str(entry))
            if (
                name
                and name.group(1) not in schema["attributes"]
                and name.group(1) not in schema["block_types"]
            ):
                problems.append(f"{where}: lifecycle.ignore_changes names {name.group(1)!r}, not an argument")


def _is_block(value: object) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and item.get("__is_block__") for item in value)
    )


def _dynamic_names(body: dict) -> set[str]:
    return {unquote(label) for entry in body.get("dynamic", []) for label in entry if label not in MARKERS}


def _check_body(body: dict, schema: dict, where: str, meta: set[str], problems: list[str]) -> None:
    attributes, block_types = schema["attributes"], schema["block_types"]
    present: set[str] = set()
    for key, value in body.items():
        if key in MARKERS or key in meta:
            continue
        if key == "dynamic" and "dynamic" not in block_types:
            for entry in value:
                for label, dynamic in entry.items():
                    if label not in MARKERS:
                        present.add(unquote(label))
                        _check_dynamic(unquote(label), dynamic, schema, where, problems)
            continue
        present.add(key)
        if _is_block(value):
            if key in block_types:
                nested = block_types[key]
                if nested.get("max_items") and len(value) > nested["max_items"]:
                    problems.append(
                        f"{where}: at most {nested['max_items']} {key} block(s), got {len(value)}"
                    )
                for item in value:
                    _check_body(item, nested["block"], f"{where}.{key}", set(), problems)
            elif attributes.get(key, {}).get("object_keys") is not None:
                for item in value:
                    _check_object_keys(item, attributes[key]["object_keys"], f"{where}.{key}", problems)
            elif key in attributes:
                problems.append(f"{where}: {key} is an argument; write `{key} = ...`, not a block")
            else:
                problems.append(f"{where}: unsupported block {key!r} (not in the hashicorp/aws 5.100 schema)")
        elif key in attributes:
            flags = attributes[key]
            if not flags.get("optional") and not flags.get("required"):
                problems.append(f"{where}: {key} is read-only (computed); it cannot be set")
        elif key in block_types:
            problems.append(f"{where}: {key} is a block; write `{key} {{ ... }}`, not `{key} = ...`")
        else:
            problems.append(f"{where}: unsupported argument {key!r} (not in the hashicorp/aws 5.100 schema)")
    for name in sorted(present):
        entry = attributes.get(name) or block_types.get(name, {}).get("block") or {}
        if entry.get("deprecated"):
            problems.append(
                f"{where}: {name} is deprecated in hashicorp/aws 5.100 (removed or renamed in 6.x); "
                "use its replacement"
            )
    for name, flags in attributes.items():
        if flags.get("required") and name not in present:
            problems.append(f"{where}: required argument {name!r} is missing")
    for name, nested in block_types.items():
        if nested.get("min_items", 0) >= 1 and name not in present:
            problems.append(f"{where}: required block {name!r} is missing")


def _check_dynamic(name: str, dynamic: dict, schema: dict, where: str, problems: list[str]) -> None:
    for key in dynamic:
        if key not in MARKERS and key not in DYNAMIC_ARGUMENTS:
            problems.append(f'{where}: dynamic "{name}" has unsupported argument {key!r}')
    if "for_each" not in dynamic or not _is_block(dynamic.get("content")):
        problems.append(f'{where}: dynamic "{name}" needs for_each and one content block')
    contents = dynamic.get("content") if _is_block(dynamic.get("content")) else []
    if name in schema["block_types"]:
        for content in contents:
            _check_body(content, schema["block_types"][name]["block"], f"{where}.{name}", set(), problems)
    elif schema["attributes"].get(name, {}).get("object_keys") is not None:
        for content in contents:
            _check_object_keys(
                content, schema["attributes"][name]["object_keys"], f"{where}.{name}", problems
            )
    else:
        problems.append(f'{where}: dynamic "{name}" generates a block the hashicorp/aws 5.100 schema lacks')


def _check_object_keys(body: dict, keys: list[str], where: str, problems: list[str]) -> None:
    for key in body:
        if key not in MARKERS and key not in keys:
            problems.append(f"{where}: unsupported argument {key!r}")


def module_dirs(infra: Path) -> list[Path]:
    """Every directory under `infra` that holds .tf files (modules, stack, envs, bootstrap)."""
    return sorted({path.parent for path in infra.rglob("*.tf") if ".terraform" not in path.parts})


TYPE_DECLARATION = re.compile(r'^[ \t]*(resource|data)\s+"(aws_[a-z0-9_]+)"', re.MULTILINE)


def used_aws_types(*paths: Path) -> dict[str, set[str]]:
    """{"resource": {...}, "data": {...}}: aws_* types declared in the files under `paths`.

    Reads every file, so it works on the template's sources too (`*.tf.jinja`,
    files whose names are Jinja conditions).
    """
    found: dict[str, set[str]] = {"resource": set(), "data": set()}
    for base in paths:
        for path in sorted(base.rglob("*")) if base.is_dir() else []:
            if path.is_file() and ".terraform" not in path.parts:
                for kind, type_name in TYPE_DECLARATION.findall(path.read_text(errors="replace")):
                    found[kind].add(type_name)
    return found
