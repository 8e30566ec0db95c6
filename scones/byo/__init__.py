"""`scones import` / `scones execute`: run an existing Step Functions + Lambda project offline.

A project exported from the AWS console (definition JSON with account-ID ARNs, Lambda files written
in the console, a SageMaker endpoint name in the code, an S3 bucket in the test events) is deployed
to the emulator *unchanged*:

- the definition text is sent as is, under the account and region its ARNs name (LocalStack keeps
  state per account: a 12-digit access key id is that account; the region comes from the client);
- each function the definition names is created from the user's source file, with the handler
  they give; ARN qualifiers (``$LATEST``, a version number, an alias) are created to match;
- the SageMaker endpoint names found in the sources and the events (or given with ``--endpoint``)
  are served by the local model server (``SCONES_ENDPOINT_ALIASES``, kept across restarts); the
  functions get ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``;
- the buckets and keys in the events are created and filled with the staged dataset.

Before anything is deployed the target checks the definition (ValidateStateMachineDefinition, see
``check_definition``): the emulator plugin's fidelity patch refuses what AWS's CreateStateMachine
refuses and LocalStack accepts, with AWS's message
(https://docs.aws.amazon.com/step-functions/latest/apireference/API_CreateStateMachine.html).
"""

from __future__ import annotations

from scones.byo.definition import (
    account_and_region,
    function_refs,
    load_definition,
    parse_function_name,
)
from scones.byo.errors import (
    ByoError,
    ByoUsageError,
    DefinitionRejected,
    NotImported,
    ServiceUnavailable,
    UnmappedFunction,
)
from scones.byo.execute import Execution, execute
from scones.byo.importer import (
    ImportResult,
    check_definition,
    import_project,
    runtime_interpreters,
    served_endpoints,
)
from scones.byo.render import render, short_json
from scones.byo.sources import (
    ObjectRef,
    dataset_prefix,
    definition_services,
    endpoint_names,
    map_functions,
    missing_modules,
    object_refs,
    python_files,
    source_services,
)

__all__ = [
    "ByoError",
    "ByoUsageError",
    "NotImported",
    "DefinitionRejected",
    "Execution",
    "ImportResult",
    "ObjectRef",
    "ServiceUnavailable",
    "UnmappedFunction",
    "account_and_region",
    "check_definition",
    "dataset_prefix",
    "definition_services",
    "endpoint_names",
    "execute",
    "function_refs",
    "import_project",
    "load_definition",
    "map_functions",
    "missing_modules",
    "object_refs",
    "parse_function_name",
    "python_files",
    "render",
    "runtime_interpreters",
    "served_endpoints",
    "short_json",
    "source_services",
]
