"""Merge results: documents in memory, or files read an item at a time and written as read."""

from __future__ import annotations

from reports.encoding import document, dumps_item, lines
from reports.reading import Typed, read
from reports.schema import SCHEMA, VERSION


def merge(docs: list[dict]) -> dict:
    """Concatenate runs and items; a run id seen before gets a suffix (~2, ~3, …)."""
    runs, items, seen = [], [], set()
    for doc in docs:
        renamed = {}
        for run in doc["runs"]:
            renamed[run["id"]] = _unique(run["id"], seen)
            runs.append({**run, "id": renamed[run["id"]]})
        items += [{**i, "run": renamed[i["run"]]} for i in doc["items"]]
    return document(runs, items)


def _unique(run_id: str, seen: set) -> str:
    new, n = run_id, 1
    while new in seen:
        n += 1
        new = f"{run_id}~{n}"
    seen.add(new)
    return new


def merged_items(paths: list, texts: bool = True, typed: bool = False) -> tuple[list[dict],
                                                                               object]:
    """Return the runs of several results files merged (repeated ids renamed) and an iterator
    of their items, each (item, its JSON text, or None; `Typed` items: see `read`), read one
    file after another."""
    runs, sources, seen = [], [], set()
    for path in paths:
        file_runs, items = read(path, texts=texts, typed=typed)
        renamed = {r["id"]: _unique(r["id"], seen) for r in file_runs}
        runs += [{**r, "id": renamed[r["id"]]} for r in file_runs]
        sources.append((renamed, items))

    def items():
        for renamed, source in sources:
            for item, text in source:
                run = item.item.run if type(item) is Typed else item["run"]
                if renamed[run] != run:
                    item = item.dict() if type(item) is Typed else item
                    item, text = {**item, "run": renamed[run]}, None
                yield item, text

    return runs, items()


def merged_chunks(runs: list[dict], items) -> object:
    """Yield the text of a merged results file (the line layout): the head, then each item as
    read."""
    yield from lines({"schema": SCHEMA, "version": VERSION, "runs": runs}, (
        text if text is not None else dumps_item(item.dict() if type(item) is Typed else item)
        for item, text in items))
