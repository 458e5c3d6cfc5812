"""Small parquet tables for step metrics and dataslices, in CMF's layout.

CMF writes these files with pandas: one row per record, an index column
(``SequenceNumber`` for step metrics, ``Path`` for dataslices) and one column
per key. Here pyarrow writes them; when pandas is importable its metadata is
added too, so ``pandas.read_parquet`` restores the index exactly as for a
file written by CMF. Files are written to a temporary name and renamed, so a
crash never leaves half a file.

Example::

    write_rows("m.parquet", "SequenceNumber", [1, 2], [{"loss": 0.5}, {"loss": 0.4}])
    index, rows = read_rows("m.parquet", "SequenceNumber")
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

from cmfrun.errors import InputFileError

PathLike = Union[str, Path]


def _columns(rows: Sequence[Mapping[str, Any]]) -> List[str]:
    seen: Dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(str(key), None)
    return list(seen)


def write_rows(path: PathLike, index_name: str, index: Sequence[Any], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``rows`` (one dict each; columns = union of keys) with ``index`` as the index column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    cols = [c for c in _columns(rows) if c != index_name]
    try:
        import pandas as pd
    except ImportError:  # pandas is an optional extra: a plain table is still readable
        pd = None
    if pd is not None:
        frame = pd.DataFrame(
            [{c: row.get(c) for c in cols} for row in rows],
            index=pd.Index(list(index), name=index_name),
            columns=cols,
        )
        table = pa.Table.from_pandas(frame, preserve_index=True)
    else:
        data: Dict[str, List[Any]] = {index_name: list(index)}
        for c in cols:
            data[c] = [row.get(c) for row in rows]
        table = pa.Table.from_pydict(data)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, str(tmp))
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def read_rows(path: PathLike, index_name: str) -> Tuple[List[Any], List[Dict[str, Any]]]:
    """Read a table written by :func:`write_rows` (or by CMF): the index values and one dict per row."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(str(path))
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such parquet file") from None
    except Exception as exc:  # pyarrow raises several kinds for a file that is not parquet
        raise InputFileError(f"{path}: not a readable parquet file: {exc}") from None
    records = table.to_pylist()
    if index_name not in table.column_names:
        raise InputFileError(f"{path}: no {index_name!r} column")
    index = [r.pop(index_name) for r in records]
    for r in records:
        r.pop("__index_level_0__", None)
    return index, records


__all__ = ["write_rows", "read_rows"]
