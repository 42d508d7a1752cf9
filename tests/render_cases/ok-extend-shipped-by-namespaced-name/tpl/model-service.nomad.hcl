[% extends "nomadml/model-service.nomad.hcl" %]
[% block group_extra %]    # operator block in the group
[% endblock %]
