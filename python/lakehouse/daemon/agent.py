"""The agent: inbox watcher + ingest schedules in the process that owns the data
directory (DESIGN decision 6). Two ways to run it:

- inside the gateway: `create_app` calls `start_background(lakehouse, config, guard)`
  when `[daemon] watch_inbox` / `run_schedules` are on, sharing the gateway's facade
  lock so HTTP requests, drops and scheduled runs never mutate concurrently;
- on its own: `lakehouse watch` (systemd `lakehouse-agent.service`) opens the data
  directory itself, for installs that do not run the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from lakehouse.config import Config
from lakehouse.daemon.inbox import Guard, InboxSettings, InboxWatcher
from lakehouse.daemon.maintenance import Maintenance
from lakehouse.daemon.schedules import Scheduler
from lakehouse.lakehouse import Lakehouse

@dataclass
class AgentHandle:
    inbox: InboxWatcher | None
    scheduler: Scheduler | None
    maintenance: Maintenance | None = None

    def stop(self) -> None:
        """Stop taking new work and wait for the file or run in hand."""
        if self.maintenance is not None:
            self.maintenance.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.inbox is not None:
            self.inbox.stop()


def default_guard(lakehouse: Lakehouse) -> Guard:
    from lakehouse.gateway.state import FacadeGuard  # the one facade lock, shared with the gateway

    return FacadeGuard(lakehouse)


def start_background(
    lakehouse: Lakehouse,
    config: Config | None = None,
    guard: Guard | None = None,
    *,
    watch_inbox: bool | None = None,
    run_schedules: bool | None = None,
) -> AgentHandle:
    """Start the watcher and/or the scheduler (default: as `[daemon]` says) in background
    threads and return a handle whose `stop()` ends them. `guard` must be the lock every
    other user of `lakehouse` in this process takes."""
    config = config or lakehouse.config
    daemon = config.daemon
    guard = guard or default_guard(lakehouse)
    watch_inbox = daemon.watch_inbox if watch_inbox is None else watch_inbox
    run_schedules = daemon.run_schedules if run_schedules is None else run_schedules
    handle = AgentHandle(inbox=None, scheduler=None)
    try:
        if watch_inbox:
            settings = InboxSettings(settle_s=daemon.inbox_settle_seconds, quiet_s=daemon.inbox_quiet_seconds)
            handle.inbox = InboxWatcher(guard, config.inbox_path, lakehouse.path, settings).start()
        if run_schedules:
            handle.scheduler = Scheduler(guard, lakehouse.path, misfire_grace_s=daemon.misfire_grace_seconds).start()
        if daemon.autotune or daemon.playbook_compaction:
            handle.maintenance = Maintenance(lakehouse, guard, daemon).start()
    except BaseException:
        handle.stop()  # do not leave a half-started agent behind
        raise
    return handle
