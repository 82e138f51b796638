"""ChatKit persistence: the SQL store behind the ChatKit server, over the shared chat tables."""

from sigmachat.store.chatkit_store import SqlChatKitStore, StoreContext

__all__ = ["SqlChatKitStore", "StoreContext"]
