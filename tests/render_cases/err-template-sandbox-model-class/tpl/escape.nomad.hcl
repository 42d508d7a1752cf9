[% extends "model-service.nomad.hcl" %]
[% block job_extra %]
  meta {
    leak = "[[ model.__class__ ]]"
  }
[% endblock %]
