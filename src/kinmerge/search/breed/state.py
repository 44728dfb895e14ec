"""The run's SQLite database: models, evaluations, kinships, merged pairs, generations, lineage.

Every finished merge, evaluation and kinship is committed the moment it exists, so a run
killed at any point (kill -9 included) loses at most the step it was in; the loop replays its
decisions from these caches and redoes nothing that finished.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from kinmerge.lineage.record import LineageRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
  name TEXT PRIMARY KEY, path TEXT NOT NULL, lineage_id TEXT NOT NULL, seq INTEGER NOT NULL,
  generation INTEGER NOT NULL, parents TEXT NOT NULL, origin TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
  name TEXT PRIMARY KEY, fitness REAL NOT NULL, scores TEXT NOT NULL, seq INTEGER NOT NULL,
  seconds REAL NOT NULL);
CREATE TABLE IF NOT EXISTS kinship (
  a TEXT NOT NULL, b TEXT NOT NULL, metric TEXT NOT NULL, value REAL NOT NULL,
  PRIMARY KEY (a, b, metric));
CREATE TABLE IF NOT EXISTS pairs (
  a TEXT NOT NULL, b TEXT NOT NULL, child TEXT NOT NULL, PRIMARY KEY (a, b));
CREATE TABLE IF NOT EXISTS reserved (
  a TEXT NOT NULL, b TEXT NOT NULL, child TEXT NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY (a, b));
CREATE TABLE IF NOT EXISTS generations (gen INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lineage (id TEXT PRIMARY KEY, name TEXT NOT NULL, record TEXT NOT NULL);
"""


@dataclass(frozen=True)
class ModelRow:
    name: str
    path: str
    lineage_id: str
    seq: int  # creation order: the tie-break that keeps rankings deterministic
    generation: int
    parents: tuple[str, ...]
    origin: str  # "pool", "top-k", "explore" or "predicted"


def _key(a: str, b: str) -> tuple[str, str]:
    """Pairs are unordered: (a, b) and (b, a) are the same merge partners."""
    return (a, b) if a <= b else (b, a)


class BreedState:
    """Thin typed access to the run database (one connection, autocommit per write)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.db = sqlite3.connect(self.path)
        self.db.executescript(SCHEMA)
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    # meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # models -----------------------------------------------------------------------------
    def add_model(self, name: str, path: str, lineage_id: str, generation: int,
                  parents: tuple[str, ...] = (), origin: str = "pool",
                  seq: int | None = None) -> ModelRow:
        """Record a model (and, for a child, the pair it came from) in one transaction.
        seq: its place in creation order (default: next); children finished out of order by
        parallel workers take the place their name reserved."""
        if seq is None:
            seq = self.db.execute("SELECT COUNT(*) FROM models").fetchone()[0]
        with self.db:
            self.db.execute("INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (name, path, lineage_id, seq, generation, json.dumps(parents),
                             origin))
            if len(parents) == 2:
                self.db.execute("INSERT INTO pairs VALUES (?, ?, ?)", (*_key(*parents), name))
        return ModelRow(name, path, lineage_id, seq, generation, tuple(parents), origin)

    def models(self) -> dict[str, ModelRow]:
        rows = self.db.execute("SELECT * FROM models ORDER BY seq").fetchall()
        return {r[0]: ModelRow(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), r[6])
                for r in rows}

    def child_of(self, a: str, b: str) -> str | None:
        row = self.db.execute("SELECT child FROM pairs WHERE a = ? AND b = ?",
                              _key(a, b)).fetchone()
        return row[0] if row else None

    def reserve(self, names: list[tuple[str, str, str, int]]) -> None:
        """Reserve (a, b, child name, seq) for children about to be made (one transaction),
        so a resumed run gives every child the name and place it had, in any finish order."""
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO reserved VALUES (?, ?, ?, ?)",
                                [(*_key(a, b), c, q) for a, b, c, q in names])

    def reserved(self) -> dict[tuple[str, str], tuple[str, int]]:
        return {(a, b): (c, q) for a, b, c, q in self.db.execute("SELECT * FROM reserved")}

    def merged_pairs(self) -> set[tuple[str, str]]:
        return {(a, b) for a, b in self.db.execute("SELECT a, b FROM pairs")}

    # evaluations ------------------------------------------------------------------------
    def add_evaluation(self, name: str, fitness: float, scores: dict[str, float],
                       seconds: float) -> None:
        seq = self.evaluation_count()
        with self.db:
            self.db.execute("INSERT INTO evaluations VALUES (?, ?, ?, ?, ?)",
                            (name, fitness, json.dumps(scores), seq, seconds))

    def evaluation(self, name: str) -> tuple[float, dict[str, float]] | None:
        row = self.db.execute("SELECT fitness, scores FROM evaluations WHERE name = ?",
                              (name,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def evaluation_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    # kinship ----------------------------------------------------------------------------
    def kinship(self, a: str, b: str, metric: str) -> float | None:
        row = self.db.execute("SELECT value FROM kinship WHERE a = ? AND b = ? AND metric = ?",
                              (*_key(a, b), metric)).fetchone()
        return row[0] if row else None

    def kinship_count(self, metric: str) -> int:
        """Pairs whose kinship in `metric` was measured."""
        return self.db.execute("SELECT COUNT(*) FROM kinship WHERE metric = ?",
                               (metric,)).fetchone()[0]

    def add_kinship(self, a: str, b: str, metric: str, value: float) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO kinship VALUES (?, ?, ?, ?)",
                            (*_key(a, b), metric, value))

    # generations ------------------------------------------------------------------------
    def set_generation(self, gen: int, data: dict) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO generations VALUES (?, ?)",
                            (gen, json.dumps(data)))

    def generations(self) -> list[dict]:
        return [json.loads(d) for (d,) in
                self.db.execute("SELECT data FROM generations ORDER BY gen")]

    # lineage mirror ---------------------------------------------------------------------
    def put_lineage(self, rec: LineageRecord) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO lineage VALUES (?, ?, ?)",
                            (rec.id, rec.name, rec.model_dump_json(exclude_none=True)))

    def lineage(self) -> dict[str, LineageRecord]:
        return {i: LineageRecord.model_validate_json(r)
                for i, r in self.db.execute("SELECT id, record FROM lineage")}
