#!/usr/bin/env python3
"""The workspace's layout rules, checked in CI (.ci/run):

- no import circle between the modules of any crate (a module is a top-level file or
  folder of `src/`; an edge is a `crate::name` path in code, comments and strings
  excluded, `#[cfg(test)]` modules excluded);
- no crate source file over MAX_FILE lines, its trailing `#[cfg(test)] mod tests` not
  counted;
- no function over MAX_FN lines, except the flat match tables named in ALLOWED
  (docs/design.md says why each is one).

Prints one line per finding and exits 1 if there is any. Usage:
    python3 scripts/check-layout.py [ROOT] [MAX_FILE] [MAX_FN]
"""
import os
import re
import sys

ALLOWED = set()  # "crate/path.rs::fn_name" of flat match tables allowed past MAX_FN


def blank(match):
    return re.sub(r"[^\n]", " ", match.group(0))


def strip_code(text):
    """Comments, strings and char literals blanked, line structure kept."""
    text = re.sub(r"/\*.*?\*/", blank, text, flags=re.S)
    text = re.sub(r'r(#*)".*?"\1|"(?:\\.|[^"\\])*"', blank, text, flags=re.S)
    text = re.sub(r"//[^\n]*", blank, text)
    return re.sub(r"'(?:\\.|[^'\\\n])'", "' '", text)


def without_tests(text):
    """The text up to a `#[cfg(test)] mod tests` block (kept out of every count)."""
    match = re.search(r"\n#\[cfg\(test\)\]\s*\nmod tests\s*\{", text)
    return text[: match.start()] if match else text


def test_blocks_blanked(code):
    """`#[cfg(test)] mod name { ... }` blocks anywhere, blanked."""
    out, pos = [], 0
    for match in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", code):
        if match.start() < pos:
            continue
        depth, i = 1, match.end()
        while i < len(code) and depth:
            depth += (code[i] == "{") - (code[i] == "}")
            i += 1
        out.append(code[pos : match.start()])
        out.append(re.sub(r"[^\n]", " ", code[match.start() : i]))
        pos = i
    out.append(code[pos:])
    return "".join(out)


def functions(code):
    """(name, lines) of every function with a body."""
    for match in re.finditer(r"\bfn\s+(\w+)", code):
        i, nest = match.end(), 0
        while i < len(code) and not (nest == 0 and code[i] in "{;"):
            nest += (code[i] in "([") - (code[i] in ")]")
            i += 1
        if i >= len(code) or code[i] == ";":
            continue
        depth, i = 1, i + 1
        while i < len(code) and depth:
            depth += (code[i] == "{") - (code[i] == "}")
            i += 1
        yield match.group(1), code[match.start() : i].count("\n") + 1


def module_of(src, path):
    parts = os.path.relpath(path, src)[:-3].split(os.sep)
    return "crate" if parts[0] in ("lib", "main") else parts[0]


def imports(code, modules, own):
    """The crate's top-level modules that `code` names through `crate::`."""
    found = set(re.findall(r"\bcrate::(\w+)", code))
    for group in re.finditer(r"\bcrate::\{", code):
        depth, i, start = 1, group.end(), group.end()
        while i < len(code) and depth:
            depth += (code[i] == "{") - (code[i] == "}")
            i += 1
        inner = code[start : i - 1]
        found.update(re.findall(r"(?:^|[,{]\s*)(\w+)", inner))
    return {name for name in found if name in modules and name != own}


def circles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in list(edges):
        if node not in index:
            visit(node)
    return out


def check(root, max_file, max_fn):
    findings = []
    crates = os.path.join(root, "crates")
    for crate in sorted(os.listdir(crates)):
        src = os.path.join(crates, crate, "src")
        if not os.path.isdir(src):
            continue
        files = sorted(
            os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs if f.endswith(".rs")
        )
        modules = {module_of(src, p) for p in files} - {"crate"}
        edges = {}
        for path in files:
            rel = os.path.relpath(path, root)
            text = without_tests(open(path, encoding="utf-8").read())
            lines = text.count("\n")
            if lines > max_file:
                findings.append(f"file {rel} has {lines} lines without its tests (limit {max_file})")
            code = test_blocks_blanked(strip_code(text))
            for name, length in functions(code):
                if length > max_fn and f"{rel}::{name}" not in ALLOWED:
                    findings.append(f"fn {name} in {rel} is {length} lines (limit {max_fn})")
            own = module_of(src, path)
            edges.setdefault(own, set()).update(imports(code, modules, own))
        for component in circles(edges):
            findings.append(f"import circle in {crate}: {', '.join(component)}")
    return findings


if __name__ == "__main__":
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    max_file = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    max_fn = int(sys.argv[3]) if len(sys.argv) > 3 else 80
    findings = check(root, max_file, max_fn)
    for line in findings:
        print(line)
    print(f"layout: {len(findings)} finding(s)")
    sys.exit(1 if findings else 0)
