"""Which users connected to this gateway get a large group's messages pushed.

The push agent copies every event of a large group to every live gateway, in
log order (pipeline/model/diffusion.py says why its messages are in no sync
timeline). Pushing one to a user who is not a member would leak it (docs/design.md,
invariant 6), so membership here is exact, never guessed. Each connected user
has, per large group, a :class:`State`: member or not, exact as of a position
(``at``, an event_no) in the group's log. States come from

* ClickHouse, when the user connects (exact as of what the store holds);
* the group's membership changes in the broadcast, applied as they pass;
* the user's own sync entries of large groups (the switch reaches every member).

Event_nos are dense, so a gateway knows when it has followed a group's
broadcast without a break since some event (a *run*); it remembers the run's
membership changes (at most ``memory`` of them) and brings a state from an
older position up to date with them. A state it cannot bring up to date (from
before the run it remembers, or when a break starts a new run) is dropped and
the user is *stale*: the gateway reloads them from ClickHouse until the store
has caught up. Until then that user gets no push of the group (push is best
effort: the device notices the gap in seq and pulls).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from pipeline.model.events import (
    ConversationCreated,
    InboxEntry,
    MemberJoined,
    MemberLeft,
    MessageSent,
    TimelineEvent,
)

MEMORY = 1_000  # membership changes remembered per group (covers the store's usual lag)


@dataclass(frozen=True, slots=True)
class State:
    member: bool
    at: int


@dataclass(slots=True)
class _Run:
    first: int
    last: int
    changes: deque[tuple[int, str, bool]] = field(default_factory=deque)
    """(event_no, user, member) of every membership change from ``first`` on."""


@dataclass
class GroupIndex:
    memory: int = MEMORY
    runs: dict[str, _Run] = field(default_factory=dict)
    users: dict[str, dict[str, State]] = field(default_factory=dict)
    """connected user → large group → their state."""
    members: dict[str, set[str]] = field(default_factory=dict)
    """large group → the connected users whose state says member."""
    stale: set[str] = field(default_factory=set)

    def connect(self, user: str) -> None:
        self.users.setdefault(user, {})

    def disconnect(self, user: str) -> None:
        for conv in self.users.pop(user, {}):
            self._unset(user, conv)
        self.stale.discard(user)

    def learn(self, user: str, conv: str, state: State) -> None:
        """A fact about a connected user's membership, exact as of ``state.at``; kept
        if newer than what is known, brought up to date with the run's changes."""
        states = self.users.get(user)
        known = states.get(conv) if states is not None else None
        if states is None or (known is not None and known.at >= state.at):
            return
        run = self.runs.get(conv)
        if run is not None and state.at < run.last:
            if state.at < run.first - 1:
                self.stale.add(user)  # the changes since are no longer remembered
                states.pop(conv, None)
                self._unset(user, conv)
                return
            for event_no, who, member in run.changes:
                if who == user and event_no > state.at:
                    state = State(member, event_no)  # changes are in log order
        states[conv] = state
        if state.member:
            self.members.setdefault(conv, set()).add(user)
        else:
            self._unset(user, conv)

    def learn_entry(self, user: str, entry: InboxEntry) -> None:
        """One of the user's own sync entries: a large group's membership change
        tells them they are a member from it on (unless it is their own leave)."""
        event = entry.event
        if not isinstance(event, TimelineEvent) or not event.large:
            return
        command = event.command
        if isinstance(command, MessageSent):
            return
        gone = isinstance(command, MemberLeft) and command.user_id == user
        self.learn(user, command.conversation_id, State(not gone, event.event_no))

    def observe(self, event: TimelineEvent) -> list[str]:
        """One event of a large group's broadcast; for a message, the connected users
        to push it to."""
        conv = event.conversation_id
        run, fresh = self._follow(conv, event.event_no)
        command = event.command
        if isinstance(command, MessageSent):
            return sorted(self.members.get(conv, ()))
        if not fresh:  # push may repeat: nothing new in it
            return []
        if isinstance(command, ConversationCreated):
            changes = [(user, True) for user in command.members]
        elif isinstance(command, MemberJoined | MemberLeft):
            changes = [(command.user_id, isinstance(command, MemberJoined))]
        else:
            changes = []  # a role: membership stays as it is
        for user, member in changes:
            run.changes.append((event.event_no, user, member))
            self.learn(user, conv, State(member, event.event_no))
        self._forget(run)
        return []

    def take_stale(self) -> set[str]:
        stale, self.stale = self.stale, set()
        return stale

    def _follow(self, conv: str, event_no: int) -> tuple[_Run, bool]:
        """The group's run with this event in it, and whether the event is new to it."""
        run = self.runs.get(conv)
        if run is not None and event_no <= run.last:
            return run, False
        if run is not None and event_no == run.last + 1:
            run.last = event_no
            return run, True
        # the first event seen, or a break: nothing before it is remembered, and a
        # state from before it may have missed a change
        self.runs[conv] = run = _Run(event_no, event_no)
        for user, states in self.users.items():
            state = states.get(conv)
            if state is not None and state.at < event_no - 1:
                del states[conv]
                self._unset(user, conv)
                self.stale.add(user)
        return run, True

    def _unset(self, user: str, conv: str) -> None:
        users = self.members.get(conv)
        if users is not None:
            users.discard(user)
            if not users:
                del self.members[conv]

    def _forget(self, run: _Run) -> None:
        while len(run.changes) > self.memory:
            event_no = run.changes[0][0]
            while run.changes and run.changes[0][0] == event_no:
                run.changes.popleft()
            run.first = event_no + 1
