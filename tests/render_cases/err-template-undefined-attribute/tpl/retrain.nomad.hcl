[% extends "retraining.nomad.hcl" %]
[% block train_extra %]
      # the retraining job has no serving values
      kill_timeout = [[ serving.kill_timeout | hcl ]]
[% endblock %]
