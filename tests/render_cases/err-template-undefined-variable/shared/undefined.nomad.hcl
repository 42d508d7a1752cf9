[% extends "model-service.nomad.hcl" %]
[% block group_extra %]
    scaling {
      min = 1
      max = [[ autoscaling.max ]]
    }
[% endblock %]
