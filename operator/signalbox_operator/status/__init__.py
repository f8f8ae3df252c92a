"""Status: computing each kind's status (pure), deciding when it is worth a write, and keeping
policies in step.
"""
