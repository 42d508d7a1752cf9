[#- Nomad's own template stanza: consul-template's {{ }} and HCL's ${ } are
    plain text to nomadml; only double square brackets are nomadml's. -#]
[% extends "model-service.nomad.hcl" %]
[% block serve_extra %]
      template {
        data        = <<EOT
CONFIG_KEY={{ key "x" }}
{{ with secret "a/b" }}API_TOKEN={{ .Data.value }}{{ end }}
SCRATCH=${NOMAD_ALLOC_DIR}/scratch
MODEL=[[ model.name ]]
EOT
        destination = "local/x.env"
        env         = true
      }
[% endblock %]
