"""Event-driven scheduling: which listed jobs a watcher reports (``filters``), one list call per scope
shared by the watchers of it (``stream``); the trigger is ``triggers.job_events.JobEventTrigger``."""
