"""What sensors and operators share (``job_wait``): the job reference built from a task's rendered
fields, its hook, watch and trigger, and how a wait ends."""
