"""The launcher's view of Dagster: plain JSON POSTs to the webserver's GraphQL endpoint.

``cli/`` never imports Dagster (tests/test_layout.py), and the Dagster CLI costs a Python start and a code
location load per call (``dagster job launch`` ~5 s); the webserver already holds the loaded location,
so launching a run, following its events and terminating it are HTTP requests of a few milliseconds.
``dagster-graphql``'s own client is a separate package with ``gql``/``requests`` behind it; the few
queries here need neither. Field names follow the schema of dagster-webserver 1.13.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

IN_PROGRESS = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")

_LOCATIONS = """
{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename
        ... on RepositoryLocation { repositories { name jobs { name } } }
        ... on PythonError { message } } } }
    ... on PythonError { message } } }
"""
_RUNS = """
query ($filter: RunsFilter, $limit: Int) { runsOrError(filter: $filter, limit: $limit) { __typename
    ... on Runs { results { runId jobName status creationTime startTime endTime } }
    ... on PythonError { message } } }
"""
_LAUNCH = """
mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
    ... on Error { message } } }
"""
_TERMINATE = """
mutation ($runId: String!, $policy: TerminateRunPolicy) {
  terminateRun(runId: $runId, terminatePolicy: $policy) {
    __typename ... on TerminateRunSuccess { run { status } } ... on TerminateRunFailure { message }
    ... on Error { message } } }
"""
_EVENTS = """
query ($runId: ID!, $cursor: String) {
  logsForRun(runId: $runId, afterCursor: $cursor, limit: 500) { __typename
    ... on EventConnection { cursor hasMore events { __typename
        ... on MessageEvent { message timestamp level stepKey }
        ... on MaterializationEvent { assetKey { path } metadataEntries { label __typename
            ... on IntMetadataEntry { intValue intRepr } ... on FloatMetadataEntry { floatValue }
            ... on TextMetadataEntry { text } ... on PathMetadataEntry { path } } }
        ... on AssetCheckEvaluationEvent { evaluation { checkName success severity description
            assetKey { path } } }
        ... on ExecutionStepFailureEvent { error { message } }
        ... on RunFailureEvent { error { message } } } }
    ... on PythonError { message } } }
"""


class DagsterApiError(RuntimeError):
    """The webserver answered, but not with what was asked (an error the caller should print)."""


@dataclass(frozen=True)
class Location:
    """The code location as the webserver sees it: loading, loaded (with its jobs) or failed."""

    name: str
    status: str  # LOADING | LOADED
    error: str | None = None
    jobs: dict[str, str] = field(default_factory=dict)  # job name -> repository name

    @property
    def loaded(self) -> bool:
        return self.status == "LOADED" and self.error is None


@dataclass(frozen=True)
class Run:
    run_id: str
    job: str
    status: str
    created: float
    started: float | None
    ended: float | None

    @property
    def in_progress(self) -> bool:
        return self.status in IN_PROGRESS


@dataclass
class DagsterApi:
    """The GraphQL endpoint of the webserver the launcher started (``http://127.0.0.1:PORT``)."""

    url: str
    timeout_s: float = 60.0  # a webserver on a busy 2-core machine can take seconds to answer

    def serving(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def query(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": document, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise DagsterApiError("; ".join(e.get("message", str(e)) for e in answer["errors"]))
        return dict(answer["data"])

    def locations(self) -> list[Location]:
        workspace = self.query(_LOCATIONS)["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise DagsterApiError(workspace.get("message", workspace["__typename"]))
        found = []
        for entry in workspace["locationEntries"]:
            loaded = entry.get("locationOrLoadError") or {}
            jobs = {
                job["name"]: repo["name"] for repo in loaded.get("repositories", []) for job in repo["jobs"]
            }
            error = loaded.get("message") if loaded.get("__typename") == "PythonError" else None
            found.append(Location(entry["name"], entry["loadStatus"], error, jobs))
        return found

    def runs(self, job: str | None, statuses: tuple[str, ...] | None = None, limit: int = 20) -> list[Run]:
        """Runs of ``job`` (of every job when None), newest first."""
        run_filter: dict[str, Any] = {"pipelineName": job} if job else {}
        if statuses:
            run_filter["statuses"] = list(statuses)
        result = self.query(_RUNS, {"filter": run_filter, "limit": limit})["runsOrError"]
        if result["__typename"] != "Runs":
            raise DagsterApiError(result.get("message", result["__typename"]))
        return [
            Run(r["runId"], r["jobName"], r["status"], r["creationTime"], r["startTime"], r["endTime"])
            for r in result["results"]
        ]

    def run(self, run_id: str) -> Run | None:
        result = self.query(_RUNS, {"filter": {"runIds": [run_id]}, "limit": 1})["runsOrError"]
        rows = result.get("results") or []
        if not rows:
            return None
        r = rows[0]
        return Run(r["runId"], r["jobName"], r["status"], r["creationTime"], r["startTime"], r["endTime"])

    def launch(self, location: Location, job: str, tags: dict[str, str] | None = None) -> str:
        """Launch ``job`` of the loaded ``location`` (through the instance's run queue); its run id."""
        if job not in location.jobs:
            raise DagsterApiError(f"code location {location.name} has no job {job!r}")
        params = {
            "selector": {
                "repositoryLocationName": location.name,
                "repositoryName": location.jobs[job],
                "jobName": job,
            },
            "runConfigData": {},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
        }
        result = self.query(_LAUNCH, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            details = result.get("message") or "; ".join(e["message"] for e in result.get("errors", []))
            raise DagsterApiError(f"launching {job} failed ({result['__typename']}): {details}")
        return str(result["run"]["runId"])

    def terminate(self, run_id: str, immediately: bool = False) -> str:
        """Ask the run to stop (``immediately``: only mark it canceled, for a run whose process is gone).

        Returns the run's status after the request: with ``immediately``, a run that something else ended
        meanwhile (the stream sensor failing a lost run) keeps its status and is not canceled."""
        policy = "MARK_AS_CANCELED_IMMEDIATELY" if immediately else "SAFE_TERMINATE"
        result = self.query(_TERMINATE, {"runId": run_id, "policy": policy})["terminateRun"]
        if result["__typename"] != "TerminateRunSuccess":
            raise DagsterApiError(f"terminating run {run_id}: {result.get('message', result['__typename'])}")
        return str(result["run"]["status"])

    def events(self, run_id: str, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """The run's events after ``cursor`` (all of them when None), and the cursor to continue from."""
        result = self.query(_EVENTS, {"runId": run_id, "cursor": cursor})["logsForRun"]
        if result["__typename"] != "EventConnection":
            raise DagsterApiError(result.get("message", result["__typename"]))
        return list(result["events"]), result["cursor"] or cursor


def metadata(event: dict[str, Any]) -> dict[str, Any]:
    """A materialization's metadata entries as ``{label: value}``."""
    values: dict[str, Any] = {}
    for entry in event.get("metadataEntries", []):
        for name in ("intValue", "floatValue", "text", "path"):
            if entry.get(name) is not None:
                values[entry["label"]] = entry[name]
                break
        else:
            if entry.get("intRepr") is not None:
                values[entry["label"]] = int(entry["intRepr"])
    return values


def is_unreachable(exc: BaseException) -> bool:
    """The webserver is not (or no longer) answering: connection refused, reset or timed out."""
    return isinstance(exc, urllib.error.URLError | ConnectionError | TimeoutError) and not isinstance(
        exc, urllib.error.HTTPError
    )
