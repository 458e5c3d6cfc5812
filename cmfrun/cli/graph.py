"""`cmf graph sync` and `cmf graph export`: mirror the store into Neo4j/FalkorDB, or write
its graph to a file. Thin: parse, call :mod:`cmfrun.commands.graph`, print."""
from __future__ import annotations

import dataclasses
import json
from typing import Optional

import click

from cmfrun.cli import handle_errors, mlmd_option, subgroup


def _n(count: int) -> str:
    return f"{count:,}"


@click.command("sync")
@mlmd_option
@click.option("-p", "--pipeline", default=None, help="Only this pipeline (default: the whole store).")
@click.option("--uri", default=None, metavar="URI",
              help="Graph database: bolt://, neo4j:// (Neo4j) or falkor://host:port/graph, redis:// (FalkorDB). "
                   "Default: NEO4J_URI, else neo4j_uri in .cmfconfig.")
@click.option("--user", default=None, help="User name (default: NEO4J_USER_NAME, else neo4j_user in .cmfconfig). "
                                           "The password comes from NEO4J_PASSWD or .cmfconfig.local, never an option.")
@click.option("--full", is_flag=True, help="Send the whole store, not only what changed since the last sync.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handle_errors
def sync(mlmd: Optional[str], pipeline: Optional[str], uri: Optional[str], user: Optional[str], full: bool,
         as_json: bool) -> None:
    """Mirror the metadata store into a graph database (or catch up).

    Nodes for pipelines, stages, executions and artifacts (labelled by type), relationships
    for membership, inputs and outputs, as CMF's graph layer writes them. Every write is a
    MERGE: running it again creates nothing already there.

    Example: cmf graph sync -p demo --uri falkor://127.0.0.1:6379/cmf
    """
    from cmfrun.commands.graph import graph_sync

    report = graph_sync(store_uri=mlmd, pipeline=pipeline, uri=uri, user=user, full=full)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(report), indent=2))
        return
    scope = f"pipeline {report.pipeline}" if report.pipeline else "store"
    how = "whole " + scope if report.full else f"{scope}, changes since the last sync"
    click.echo(
        f"graph sync to {report.target} ({how}): {_n(report.executions)} execution(s), {_n(report.artifacts)} artifact(s) read; "
        f"nodes: {_n(report.nodes_created)} created, {_n(report.nodes_updated)} updated, "
        f"{_n(report.nodes_existing)} already there; relationships: {_n(report.rels_created)} created, "
        f"{_n(report.rels_existing)} already there ({report.seconds:.1f} s)"
    )


@click.command("export")
@mlmd_option
@click.option("-p", "--pipeline", default=None, help="Only this pipeline (default: the whole store).")
@click.option("--format", "fmt", type=click.Choice(["cypher", "graphml", "json"]), default="cypher", show_default=True,
              help="cypher: MERGE statements, one per line; graphml: GraphML 1.0; json: nodes and relationships.")
@click.option("-o", "--output", required=True, metavar="FILE", help="File to write ('-' for standard output).")
@handle_errors
def export(mlmd: Optional[str], pipeline: Optional[str], fmt: str, output: str) -> None:
    """Write the store's graph to a file, straight from the store (no graph database needed).

    Example: cmf graph export --format cypher -o lineage.cypher && cypher-shell -f lineage.cypher
    """
    from cmfrun.commands.graph import graph_export

    result = graph_export(fmt, output, store_uri=mlmd, pipeline=pipeline)
    if result.text is not None:
        click.echo(result.text, nl=False)
        return
    click.echo(f"wrote {result.path} ({fmt}): {_n(result.nodes)} nodes, {_n(result.relationships)} relationships")


def register(group: click.Group) -> None:
    """Add `cmf graph sync|export` to the `cmf` group."""
    graph = subgroup(group, "graph", "Graph databases: mirror the store into Neo4j or FalkorDB, export its graph.")
    graph.add_command(sync)
    graph.add_command(export)
