[#- Company policy on top of nomadml's shipped service job. -#]
[% extends "model-service.nomad.hcl" %]

[% block job_extra %]
  constraint {
    attribute = "${node.class}"
    value     = "ml"
  }
[% endblock %]

[% block group_extra %]
    ephemeral_disk {
      size = 500
    }
[% endblock %]

[% block bootstrap_extra %]
      logs {
        max_files     = 2
        max_file_size = 5
      }
[% endblock %]

[% block serve_config_extra %]
        labels = {
          team  = "ml-platform"
          model = [[ model.name | hcl ]]
        }
[% endblock %]
