"""The sandbox's kubectl tests that hold on any cluster, run against a real one.

Left out: the tests that depend on the sandbox's own set-up (two nodes, an
Immediate-binding default StorageClass).
"""

from __future__ import annotations

import pytest
from tests.integration.test_kubectl import (  # noqa: F401 - imported to be collected here too
    ns,
    test_api_resources_lists_short_names_and_groups,
    test_apply_changes_a_container_and_keeps_the_other,
    test_apply_creates_then_reports_unchanged,
    test_apply_refuses_unknown_fields_through_server_side_validation,
    test_create_from_file_and_already_exists,
    test_delete_namespace_removes_its_content,
    test_explain_a_builtin_kind,
    test_get_all_namespaces_with_small_chunks_returns_every_item,
    test_get_output_formats_and_selectors,
    test_label_and_annotate,
    test_patch_with_all_three_types,
    test_server_side_dry_run_stores_nothing,
    test_watch_prints_changes,
)
from tests.integration.test_kubectl_typed import (  # noqa: F401
    test_auth_can_i_and_whoami,
    test_generator_commands_store_what_kubectl_sends,
    test_secret_bytes_survive_the_protobuf_path,
)

pytestmark = pytest.mark.e2e
