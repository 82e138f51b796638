"""The store tests again, on PostgreSQL (see conftest.py)."""

import pytest

from tests.store.test_chatkit_store import (
    test_attachments_upsert_load_delete,
    test_default_id_prefixes,
    test_delete_item_and_unknown_item_is_a_no_op,
    test_delete_thread_removes_items_and_attachments,
    test_every_item_type_round_trips_losslessly,
    test_feedback_is_stored_with_the_item,
    test_isolation_in_every_method,
    test_item_upserts_and_add_tolerates_an_existing_id,
    test_keyset_paging_both_orders,
    test_thread_list_paging_both_orders,
    test_thread_metadata_round_trips_even_from_a_full_thread,
)
from tests.store.test_one_history import (
    test_a_responses_conversation_opens_as_chatkit_items,
    test_chatkit_items_read_as_legacy_messages_and_history,
    test_deleting_or_saving_a_rendered_workflow,
    test_items_of_a_run_are_not_written_by_the_store,
    test_migration_0003_keeps_existing_conversations,
    test_paging_across_rendered_workflows,
)

pytestmark = pytest.mark.postgres

# Collected here, under this module's postgres mark and conftest.
__all__ = [
    "test_a_responses_conversation_opens_as_chatkit_items",
    "test_attachments_upsert_load_delete",
    "test_chatkit_items_read_as_legacy_messages_and_history",
    "test_default_id_prefixes",
    "test_delete_item_and_unknown_item_is_a_no_op",
    "test_delete_thread_removes_items_and_attachments",
    "test_deleting_or_saving_a_rendered_workflow",
    "test_every_item_type_round_trips_losslessly",
    "test_feedback_is_stored_with_the_item",
    "test_isolation_in_every_method",
    "test_item_upserts_and_add_tolerates_an_existing_id",
    "test_items_of_a_run_are_not_written_by_the_store",
    "test_keyset_paging_both_orders",
    "test_migration_0003_keeps_existing_conversations",
    "test_paging_across_rendered_workflows",
    "test_thread_list_paging_both_orders",
    "test_thread_metadata_round_trips_even_from_a_full_thread",
]
