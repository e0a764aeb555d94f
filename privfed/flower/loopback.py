"""A Flower Grid that delivers messages to ClientApps in this process.

The same ServerApp code and ClientApp functions, the same Message/RecordDict/ArrayRecord
serialisation, and per-node ``Context`` state, without SuperLink, SuperNodes or sockets.
Tests use it to check the Flower path message by message in seconds (and against the
in-process engine); the benchmark uses it to separate Flower's message handling from
its process and network costs. A real deployment never uses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flwr.app import Context, Error, Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

#: Flower's error code for an exception raised in a ClientApp.
CLIENT_APP_RAISED_EXCEPTION = 2
NODE_UNAVAILABLE = 5
SERVER_NODE_ID = 1


class LoopbackGrid(Grid):
    """Nodes 101, 102, ... each with its own node config and ``context.state``."""

    def __init__(self, client_app: Any, node_configs: Sequence[Mapping[str, Any]], run_id: int = 1) -> None:
        TaskIdentity.run_id = run_id
        TaskIdentity.node_id = SERVER_NODE_ID
        TaskIdentity.task_id = 0
        self.client_app = client_app
        self.contexts = {
            101 + i: Context(run_id=run_id, node_id=101 + i, node_config=dict(config), state=RecordDict(), run_config={})
            for i, config in enumerate(node_configs)
        }
        self.offline: set[int] = set()
        self.delivered: list[Message] = []
        self._run = None

    # ---- Grid interface ---------------------------------------------------------------------
    def set_run(self, run: Any) -> None:
        self._run = run

    @property
    def run(self) -> Any:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return Message(content=content, message_type=message_type, dst_node_id=dst_node_id, group_id=group_id, ttl=ttl)

    def get_node_ids(self) -> Iterable[int]:
        return [node for node in self.contexts if node not in self.offline]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError("LoopbackGrid delivers synchronously; use send_and_receive")

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError("LoopbackGrid delivers synchronously; use send_and_receive")

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        replies = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = message.object_id
            node = message.metadata.dst_node_id
            if node in self.offline or node not in self.contexts:
                replies.append(_error_reply(message, NODE_UNAVAILABLE, "node unavailable"))
                continue
            self.delivered.append(message)
            try:
                reply = self.client_app(message=message, context=self.contexts[node])
            except Exception as exc:  # noqa: BLE001 - mirrors Flower's error reply
                reply = _error_reply(message, CLIENT_APP_RAISED_EXCEPTION, f"{type(exc)}:<'{exc}'>")
            reply.metadata.__dict__["_message_id"] = reply.object_id
            replies.append(reply)
        return replies


def _error_reply(message: Message, code: int, reason: str) -> Message:
    reply = Message(Error(code=code, reason=reason), reply_to=message)
    reply.metadata.__dict__["_message_id"] = reply.object_id
    return reply
