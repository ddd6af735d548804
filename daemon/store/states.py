"""The words the store writes in its state columns. Pure constants: imported by the recall rules
(`daemon.outcome`) as well as by the store, so this module needs nothing but Python."""

# Queue states.
RUNNING, STOPPED, DELETED = "running", "stopped", "deleted"

# Customer states. A customer ends in exactly one of FINAL_STATES.
PENDING, CALLING = "pending", "calling"
SUCCESS, FAILED, DNC = "success", "failed", "dnc"
FINAL_STATES = (SUCCESS, FAILED, DNC, DELETED)
CUSTOMER_STATES = (PENDING, CALLING) + FINAL_STATES

# Attempt states: dialing (originate sent), answered, done (every column final).
DIALING, ANSWERED, DONE = "dialing", "answered", "done"
