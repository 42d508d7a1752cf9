[% extends "model-service.nomad.hcl" %]
[% block group_extra %]
[% include "partials/missing.hcl" %]
[% endblock %]
