[#- Values are read-only: a template cannot change what nomadml checked. -#]
[[ serving.env.update({"NOMAD_TOKEN": "stolen"}) ]]
[% include "model-service.nomad.hcl" %]
