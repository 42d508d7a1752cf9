[% extends "model-service.nomad.hcl" %]
[% block serve_extra %]
      meta {
        owner = [[ model.name | hcl ]
      }
[% endblock %]
