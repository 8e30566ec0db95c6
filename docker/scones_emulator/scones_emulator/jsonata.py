"""JSONata for Step Functions without a JVM: LocalStack's evaluator hook backed by jsonata-python.

LocalStack evaluates every JSONata expression through the module global ``_eval_jsonata`` of
``localstack.services.stepfunctions.asl.jsonata.jsonata``, which it lazily points at a JPype bridge
to the Java implementation (a JDK download at first use). Setting that global first means the
bridge is never built. Expressions arrive fully composed (``($states := {...}; ...; expr)``) and
are evaluated with no input, exactly as the JVM bridge does.
"""

from __future__ import annotations

import json
import logging
from typing import Any

LOG = logging.getLogger(__name__)


def eval_jsonata(expression: str) -> Any:
    """Evaluate a composed JSONata expression to plain JSON values (undefined -> None).

    Raises LocalStack's JSONataException("UNKNOWN", message) on any failure, as the JVM bridge
    does, so Step Functions reports States.QueryEvaluationError the same way.
    """
    import jsonata as jsonata_python
    from localstack.services.stepfunctions.asl.jsonata.jsonata import JSONataException

    try:
        result = jsonata_python.Jsonata(expression).evaluate(None)
        # A JSON round trip (the bridge does the same through Jackson) turns JList and other
        # helper types into plain lists/dicts and rejects functions and NaN as non-JSON.
        return json.loads(json.dumps(result, allow_nan=False))
    except Exception as err:  # jsonata-python raises JException, Python errors on bad input
        raise JSONataException("UNKNOWN", f"{type(err).__name__}: {err}") from err


def install() -> None:
    """Point LocalStack's JSONata evaluator at :func:`eval_jsonata`."""
    from localstack.services.stepfunctions.asl.jsonata import jsonata as ls_jsonata

    ls_jsonata._eval_jsonata = eval_jsonata
    LOG.debug("Step Functions JSONata evaluates with jsonata-python (no JVM)")
