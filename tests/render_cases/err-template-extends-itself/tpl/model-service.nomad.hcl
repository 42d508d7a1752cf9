[% extends "model-service.nomad.hcl" %]
[% block group_extra %]    # mine
[% endblock %]
