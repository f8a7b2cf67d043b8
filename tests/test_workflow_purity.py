"""Workflow code reads no clock, draws no randomness and does no I/O: checked statically, because
the worker passes it through Temporal's sandbox (issue 27; spotctl/worker/sandbox.py).

Why a static check. The sandbox re-executes every module it does not pass through for each
workflow run, about half of the worker CPU a workflow costs (BENCHMARKS.md, "Workflow CPU: the
sandbox"), so the worker passes spotctl's workflow-side packages through (PASSED_THROUGH). For a
passed-through module the sandbox no longer checks at run time the members it restricts
(datetime.now, time.*, random.*, os.*, uuid4, ...: a call is simply allowed, measured with the
SDK in this session), nor gives each run its own copy of the module's globals; its restricted
builtins (open, input, ...) still apply. This check gives back both guarantees for every module
the workflows can reach, and does better than the run-time check in one way: it looks at every
line, not only the paths a test happens to run.

What it walks: every module of the passed-through packages (spotctl/workflows, models, policy)
and every spotctl module they import (the closure must stay inside PASSED_THROUGH).
spotctl.activities is passed through for its typed references only (workflow.execute_activity
takes them); its code does I/O by design and never runs in a workflow, so it is not walked,
and calling a name imported from it is refused instead.

The rules (each violation names its module, line and rule):
- imports: only modules known to be pure may be imported, a list kept here (PURE_MODULES):
  the typing and data modules (typing, dataclasses, enum, collections, abc, functools,
  itertools, operator, copy, types), arithmetic (math, statistics, decimal, fractions, numbers,
  bisect, heapq), text (re, string, textwrap, difflib, json for encoding and decoding strings,
  base64, hashlib, urllib.parse), datetime and asyncio with the members below refused,
  temporalio's workflow API (its clock and random, workflow.now and workflow.random, are the
  replayed ones), pydantic. Everything else is refused, by name with its reason where it is a
  known danger (REFUSED_MODULES: time, random, secrets, uuid, os, sys, io, pathlib, shutil,
  tempfile, glob, socket, ssl, select, selectors, signal, subprocess, threading,
  multiprocessing, concurrent, logging, sqlite3, urllib.request, http, requests, httpx, aiohttp,
  grpc, boto3, botocore, google, importlib), or as "not known to be pure" otherwise: a new
  dependency of workflow code is a decision made here, on purpose.
- clocks: any `.now()`, `.utcnow()`, `.today()` call (datetime.now, date.today; the datetime
  type itself, fromisoformat, timedelta arithmetic are fine; a workflow's clock is
  workflow.now()).
- asyncio: no threads, sockets, subprocesses or event loops of its own (to_thread, run,
  open_connection, start_server, create_subprocess_*, run_in_executor, new_event_loop, ...).
  asyncio.sleep, wait_for, shield, create_task and gather stay allowed: in a workflow they run
  on Temporal's deterministic event loop, where a sleep is a durable timer like workflow.sleep.
- builtins: open, print, input, breakpoint, exec, eval, compile, __import__, globals, exit,
  quit (I/O, or code the check cannot see).
- module state: no `global` statement, and no function writing to a name bound at module level
  (item or attribute assignment, `del`, or a mutating method such as append, update, add, pop,
  setdefault): passed through, module state is shared by every workflow run in the process, so
  a write would leak from one run, or one replay, into another. Class state likewise: no
  `cls.x = ...` or `type(self).x = ...`, and no list, dict or set as a class attribute (but in
  a pydantic model or a dataclass, which give each instance its own).
- workflow.unsafe.sandbox_unrestricted: refused (it turns the remaining run-time checks off).
- activities: a name imported from spotctl.activities is never called.

What it cannot see: dynamic attribute access through an allowed module's internals (e.g.
reaching `time` as an attribute of some allowed module). Such code would not pass review; the
imports it would need to be written plainly (importlib, __import__, sys.modules) are refused.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from spotctl.worker.sandbox import PASSED_THROUGH

pytestmark = pytest.mark.quick

SRC = Path(__file__).resolve().parents[1]
REFERENCE_ONLY = "spotctl.activities"
"""Passed through for typed references; never walked, never called from workflow code."""

PURE_MODULES = frozenset({
    "__future__", "abc", "typing", "typing_extensions", "dataclasses", "enum", "collections", "collections.abc",
    "functools", "itertools", "operator", "copy", "types", "contextlib",
    "math", "statistics", "decimal", "fractions", "numbers", "bisect", "heapq",
    "re", "string", "textwrap", "difflib", "json", "base64", "hashlib", "urllib.parse",
    "datetime", "asyncio",
    "temporalio", "temporalio.workflow", "temporalio.common", "temporalio.exceptions",
    "pydantic", "pydantic_core", "annotated_types",
})
"""Importable by workflow code (their submodules too, except where a longer refused name matches)."""

REFUSED_MODULES = {
    **dict.fromkeys(("time", "random", "secrets", "uuid"), "a clock or randomness: use workflow.now() / workflow.random()"),
    **dict.fromkeys(("os", "sys", "io", "pathlib", "shutil", "tempfile", "glob", "fileinput", "mmap"),
                    "files or the process: workflows do no I/O"),
    **dict.fromkeys(("socket", "ssl", "select", "selectors", "signal", "subprocess", "threading", "multiprocessing",
                     "concurrent", "urllib.request", "http", "ftplib", "smtplib", "requests", "httpx", "aiohttp",
                     "grpc"), "network, processes or threads: workflows do no I/O"),
    **dict.fromkeys(("sqlite3", "dbm", "shelve", "pickle", "boto3", "botocore", "google"),
                    "a database, storage or a cloud: only activities call them"),
    "logging": "handlers write files and streams: use workflow.logger",
    "importlib": "dynamic imports the check cannot see",
    "temporalio.client": "a Temporal client from workflow code: use the workflow API",
    "temporalio.worker": "the worker itself: not for workflow code",
    "temporalio.activity": "activity code: not for workflow code",
}
"""Modules refused, with the reason the check prints."""

CLOCK_CALLS = frozenset({"now", "utcnow", "today"})
WORKFLOW_API = frozenset({"workflow", "temporalio.workflow"})
"""workflow.now() is the replayed clock: the one `.now()` allowed."""
ASYNCIO_REFUSED = frozenset({
    "to_thread", "run", "run_coroutine_threadsafe", "new_event_loop", "get_event_loop", "set_event_loop",
    "open_connection", "start_server", "open_unix_connection", "start_unix_server",
    "create_subprocess_exec", "create_subprocess_shell", "StreamReader", "StreamWriter", "Runner",
})
LOOP_METHODS_REFUSED = frozenset({
    "run_in_executor", "create_connection", "create_server", "create_unix_connection", "create_unix_server",
    "create_datagram_endpoint", "getaddrinfo", "getnameinfo", "subprocess_exec", "subprocess_shell",
    "sock_connect", "sock_recv", "sock_sendall", "sock_accept", "connect_read_pipe", "connect_write_pipe",
    "add_reader", "add_writer", "add_signal_handler", "call_soon_threadsafe", "run_until_complete", "run_forever",
})
BUILTINS_REFUSED = frozenset({"open", "print", "input", "breakpoint", "exec", "eval", "compile", "__import__",
                              "globals", "exit", "quit"})
MUTATORS = frozenset({"append", "extend", "insert", "remove", "pop", "popitem", "clear", "update", "setdefault",
                      "add", "discard", "appendleft", "extendleft", "popleft", "sort", "reverse",
                      "__setitem__", "__delitem__", "__setattr__"})


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    rule: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.rule}"


def module_rule(name: str) -> str | None:
    """Why `name` may not be imported by workflow code, or None if it may."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in REFUSED_MODULES:
            return f"imports {name}: {REFUSED_MODULES[prefix]}"
        if prefix in PURE_MODULES or prefix == "spotctl":
            return None
    return f"imports {name}: not known to be pure (add it to PURE_MODULES only if it does no I/O and reads no clock)"


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _root(node: ast.expr) -> str | None:
    """The name an expression like `a.b[c].d(...)` starts from."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _mutable(value: ast.expr) -> bool:
    return isinstance(value, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)) or (
        isinstance(value, ast.Call) and ast.unparse(value.func) in ("list", "dict", "set", "defaultdict", "deque",
                                                                    "Counter", "OrderedDict", "bytearray"))


def _copies_defaults(cls: ast.ClassDef) -> bool:
    """A pydantic model copies its field defaults into each instance (a dataclass refuses a
    mutable one): their class-level lists and dicts are per instance, not shared."""
    names = {ast.unparse(b) for b in cls.bases} | {ast.unparse(d) for d in cls.decorator_list}
    return any(n.endswith(("BaseModel", "dataclass")) or n.startswith("dataclass(") for n in names)


def _module_names(tree: ast.Module) -> set[str]:
    """Names bound at module level (assignments, imports, definitions), including inside
    module-level `with`, `if` and `try` blocks."""
    names: set[str] = set()
    for node in tree.body:
        for sub in ast.walk(node):
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if sub in tree.body or any(sub in getattr(n, "body", []) for n in ast.walk(node)):
                    names.add(sub.name)
            elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store) and not _inside_def(tree, sub):
                names.add(sub.id)
            elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in sub.names)
    return names


def _inside_def(tree: ast.Module, target: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            if any(sub is target for sub in ast.walk(node)):
                return True
    return False


def _local_names(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    args = fn.args
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a}
    for sub in ast.walk(fn):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            names.add(sub.id)
    return names


def violations(source: str, module: str, is_package: bool = False) -> tuple[list[Violation], set[str]]:
    """The rule violations of one module's source, and the spotctl modules it imports."""
    tree = ast.parse(source)
    found: list[Violation] = []
    imported: set[str] = set()
    reference_only: set[str] = set()

    def bad(node: ast.AST, rule: str) -> None:
        found.append(Violation(module, getattr(node, "lineno", 0), rule))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(REFERENCE_ONLY):
                    reference_only.add((alias.asname or alias.name).split(".")[0])
                elif alias.name.startswith("spotctl."):
                    imported.add(alias.name)
                elif rule := module_rule(alias.name):
                    bad(node, rule)
        elif isinstance(node, ast.ImportFrom):
            source_module = _resolve(node, module, is_package)
            if source_module.startswith(REFERENCE_ONLY):
                reference_only.update(a.asname or a.name for a in node.names)
                continue
            if source_module.startswith("spotctl"):
                imported.add(source_module)
                # `from spotctl.x import y` may name a submodule y: walk it too if it is one
                imported.update(f"{source_module}.{a.name}" for a in node.names)
                continue
            for alias in node.names:
                full = f"{source_module}.{alias.name}"
                rule = module_rule(full) if module_rule(source_module) is None else module_rule(source_module)
                if rule:
                    bad(node, rule.replace(f"imports {full}", f"imports {source_module}.{alias.name}"))
                    break
                if source_module == "asyncio" and alias.name in ASYNCIO_REFUSED:
                    bad(node, f"asyncio.{alias.name}: threads, sockets, processes or a loop of its own")
                if source_module == "datetime" and alias.name in CLOCK_CALLS:
                    bad(node, f"datetime.{alias.name}: a clock (use workflow.now())")
        elif isinstance(node, ast.Global):
            bad(node, f"global {', '.join(node.names)}: module state is shared by every run when passed through")
        elif isinstance(node, ast.Attribute):
            if node.attr in CLOCK_CALLS and isinstance(getattr(node, "_parent_call", None), ast.Call):
                pass  # reported on the call below
            if node.attr == "sandbox_unrestricted":
                bad(node, "workflow.unsafe.sandbox_unrestricted: turns the sandbox's remaining checks off")
            if _root(node) == "asyncio" and node.attr in ASYNCIO_REFUSED:
                bad(node, f"asyncio.{node.attr}: threads, sockets, processes or a loop of its own")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in BUILTINS_REFUSED:
                bad(node, f"{func.id}(): I/O or code the check cannot see")
            if isinstance(func, ast.Attribute):
                if func.attr in CLOCK_CALLS and ast.unparse(func.value) not in WORKFLOW_API:
                    bad(node, f".{func.attr}(): a clock (use workflow.now())")
                if func.attr in LOOP_METHODS_REFUSED:
                    bad(node, f".{func.attr}(): threads, sockets or processes through an event loop")
            if _root(func) in reference_only:
                bad(node, f"calls {_root(func)}: activities are passed through for their typed references only "
                          "(run them with workflow.execute_activity*)")

    for cls in ast.walk(tree):
        if isinstance(cls, ast.ClassDef) and not _copies_defaults(cls):
            for stmt in cls.body:
                value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
                if value is not None and _mutable(value):
                    bad(stmt, f"a mutable class attribute in {cls.name}: class state is shared by every run")
    module_level = _module_names(tree)
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        local = _local_names(fn)
        shared = module_level - local
        first_arg = fn.args.args[0].arg if fn.args.args else None
        for sub in ast.walk(fn):
            targets: list[ast.expr] = []
            if isinstance(sub, (ast.Assign, ast.Delete)):
                targets = list(sub.targets)
            elif isinstance(sub, (ast.AugAssign, ast.AnnAssign)):
                targets = [sub.target]
            for target in targets:
                if isinstance(target, (ast.Subscript, ast.Attribute)):
                    root = _root(target)
                    if root in shared:
                        bad(sub, f"writes to module-level {root}: module state is shared by every run when passed through")
                    elif (root == "cls" and first_arg == "cls" or "__class__" in ast.unparse(target)
                          or "type(" in ast.unparse(target)) and isinstance(target, ast.Attribute):
                        bad(sub, "writes to the class (cls.x = ...): class state is shared by every run")
            if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr in MUTATORS:
                if isinstance(sub.func.value, (ast.Name, ast.Attribute, ast.Subscript)) and _root(sub.func.value) in shared:
                    bad(sub, f"{_root(sub.func.value)}.{sub.func.attr}(): mutates module-level state shared by every run")
    return found, imported


def module_file(name: str) -> tuple[Path, bool] | None:
    """The source file of a spotctl module and whether it is a package, or None if `name`
    names no module (a class or function imported from a package)."""
    path = SRC.joinpath(*name.split("."))
    if (path / "__init__.py").exists():
        return path / "__init__.py", True
    if path.with_suffix(".py").exists():
        return path.with_suffix(".py"), False
    return None


def walked_modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the passed-through packages (but the reference-only one) and every
    spotctl module they import, transitively."""
    todo: list[str] = []
    for package in PASSED_THROUGH:
        if package == REFERENCE_ONLY:
            continue
        root = SRC.joinpath(*package.split("."))
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(SRC).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            todo.append(".".join(parts))
    seen: dict[str, tuple[Path, bool]] = {}
    while todo:
        name = todo.pop()
        if name in seen or name.startswith(REFERENCE_ONLY):
            continue
        found = module_file(name)
        if found is None:
            continue
        seen[name] = found
        parent = name.rpartition(".")[0]
        if parent:
            todo.append(parent)  # importing a module runs its package's __init__
        _, imported = violations(found[0].read_text(), name, found[1])
        todo.extend(imported)
    return seen


def test_workflow_code_reads_no_clock_and_does_no_io() -> None:
    modules = walked_modules()
    assert "spotctl.workflows.spot_job" in modules and "spotctl.policy" in modules and "spotctl.models.spec" in modules
    found = [str(v) for name, (path, is_package) in sorted(modules.items())
             for v in violations(path.read_text(), name, is_package)[0]]
    assert not found, "workflow code that is passed through the sandbox must stay pure:\n" + "\n".join(found)


def test_everything_workflows_reach_is_inside_the_passed_through_packages() -> None:
    """A spotctl module the workflows import is loaded outside the sandbox whatever its
    package (it is imported by a passed-through module): PASSED_THROUGH must say so, and the
    check above walks it."""
    outside = sorted(name for name in walked_modules() if name != "spotctl"
                     and not any(name == p or name.startswith(p + ".") for p in PASSED_THROUGH))
    assert not outside, f"reached from the workflows but not in worker/sandbox.py PASSED_THROUGH: {outside}"


PLANTED = {
    "import time\n": "imports time: a clock",
    "from random import randint\n": "imports random",
    "import uuid\nx = uuid.uuid4()\n": "imports uuid",
    "import os.path\n": "imports os.path: files",
    "from pathlib import Path\n": "imports pathlib",
    "import socket\n": "imports socket",
    "import subprocess\n": "imports subprocess",
    "import threading\n": "imports threading",
    "import logging\n": "imports logging",
    "import sqlite3\n": "imports sqlite3",
    "import boto3\n": "imports boto3",
    "from google.cloud import storage\n": "imports google",
    "from urllib.request import urlopen\n": "imports urllib.request",
    "import http.client\n": "imports http.client",
    "import importlib\n": "imports importlib",
    "import yaml\n": "not known to be pure",
    "from temporalio import activity\n": "imports temporalio.activity",
    "from datetime import datetime\ndef f():\n    return datetime.now()\n": ".now(): a clock",
    "import datetime\ndef f():\n    return datetime.datetime.utcnow()\n": ".utcnow(): a clock",
    "from datetime import date\ndef f():\n    return date.today()\n": ".today(): a clock",
    "import asyncio\nasync def f():\n    await asyncio.to_thread(len, [])\n": "asyncio.to_thread",
    "from asyncio import open_connection\n": "asyncio.open_connection",
    "import asyncio\nasync def f():\n    await asyncio.get_running_loop().run_in_executor(None, len, [])\n":
        ".run_in_executor()",
    "def f():\n    return open('x').read()\n": "open(): I/O",
    "def f():\n    print('x')\n": "print(): I/O",
    "def f():\n    return eval('1')\n": "eval()",
    "def f():\n    return __import__('time')\n": "__import__()",
    "N = 0\ndef f():\n    global N\n    N += 1\n": "global N",
    "SEEN = {}\ndef f(k):\n    SEEN[k] = 1\n": "writes to module-level SEEN",
    "SEEN = set()\ndef f(k):\n    SEEN.add(k)\n": "SEEN.add(): mutates module-level state",
    "class C:\n    n = 0\n    @classmethod\n    def f(cls):\n        cls.n = 1\n": "writes to the class",
    "class C:\n    n = 0\n    def f(self):\n        type(self).n = 1\n": "writes to the class",
    "class W:\n    seen: list[int] = []\n": "a mutable class attribute in W",
    "from temporalio import workflow\ndef f():\n    with workflow.unsafe.sandbox_unrestricted():\n        pass\n":
        "sandbox_unrestricted",
    "from spotctl.activities import MonitorActivities\ndef f():\n    return MonitorActivities.monitor(None)\n":
        "calls MonitorActivities: activities are passed through for their typed references only",
}


@pytest.mark.parametrize("source", list(PLANTED), ids=[f"planted-{i}" for i in range(len(PLANTED))])
def test_the_check_refuses_a_planted_violation(source: str) -> None:
    found, _ = violations(source, "spotctl.workflows.planted")
    assert any(PLANTED[source] in str(v) for v in found), (source, [str(v) for v in found])


def test_the_check_allows_pure_workflow_code() -> None:
    """What spotctl's workflows do every day passes: the workflow clock and random, durable
    sleeps, datetime as a type, pure helpers, activities by reference, local state."""
    source = '''
from __future__ import annotations
import asyncio
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from temporalio import workflow
with workflow.unsafe.imports_passed_through():
    from spotctl.activities import MonitorActivities
    from spotctl.models import JobState
LIMIT = timedelta(minutes=1)
TABLE = {"a": 1}

@dataclass
class Counts:
    seen: list[int] = field(default_factory=list)

    def note(self, n: int) -> None:
        self.seen.append(n)

@workflow.defn
class W:
    def __init__(self) -> None:
        self.state: dict[str, int] = {}

    @workflow.run
    async def run(self) -> str:
        started: datetime = workflow.now()
        await asyncio.sleep(math.ceil(workflow.random().random()))
        await workflow.execute_activity_method(MonitorActivities.monitor, None, start_to_close_timeout=LIMIT)
        table = dict(TABLE)
        table["b"] = 2
        self.state.update(table)
        return started.isoformat() + str(TABLE.get("a"))
'''
    found, imported = violations(source, "spotctl.workflows.planted")
    assert not found, [str(v) for v in found]
    assert "spotctl.models" in imported


def test_the_worker_and_the_replay_run_the_same_sandbox() -> None:
    """The worker's runner is the sandbox with PASSED_THROUGH (never the unsandboxed runner,
    never all of spotctl); the replay test replays with it, so replay covers what runs."""
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from spotctl.worker.sandbox import workflow_runner

    runner = workflow_runner()
    assert isinstance(runner, SandboxedWorkflowRunner)
    restrictions = runner.restrictions
    assert set(PASSED_THROUGH) <= restrictions.passthrough_modules
    assert "spotctl" not in restrictions.passthrough_modules and not restrictions.passthrough_all_modules
    assert {m for m in restrictions.passthrough_modules if m.startswith("spotctl")} == set(PASSED_THROUGH)
    assert "workflow_runner()" in (SRC / "tests" / "test_replay.py").read_text()
    assert "workflow_runner()" in (SRC / "spotctl" / "worker" / "pool.py").read_text()
