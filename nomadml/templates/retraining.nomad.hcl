[#- The retraining job: a Nomad periodic batch job per model line that trains a
    new candidate, registers it and runs the validation gates. prohibit_overlap
    keeps one run in flight per model line. With `dispatch`, the same job as a
    parameterized one the post-promotion guard dispatches. Extension point: train_extra. -#]
[% import "nomadml/_job.hcl" as job_meta -%]
job [[ job.id | hcl ]] {
  type        = "batch"
[[ job_meta.placement_and_meta(job) ]]

[%- if dispatch %]

  # Dispatched by the post-promotion guard after a regression ([guard] retrain). A job
  # cannot be both: Nomad never runs the schedule of a parameterized periodic job.
  parameterized {
    meta_optional = ["reason", "line", "regressed_version"]
  }
[%- else %]

  periodic {
    crons            = [[ [retraining.schedule] | hcl ]]
    time_zone        = [[ retraining.time_zone | hcl ]]
    prohibit_overlap = true
  }
[%- endif %]

  group "train" {
    count = 1

    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "train" {
      driver = [[ retraining.driver | hcl ]]
      config {
[%- if retraining.driver == "docker" %]
        image        = [[ retraining.image | hcl ]]
        network_mode = "host"
[%- endif %]
        command = [[ retraining.command[0] | hcl ]]
        args    = [[ (retraining.command[1:] + retraining.args) | hcl ]]
      }
      env = {
        NOMADML_MODEL_NAME = [[ model.name | hcl ]]
        NOMADML_AUTO_DEPLOY = [[ (retraining.auto_deploy | string | lower) | hcl ]]
        # The job carries its own spec: the run needs no file on the client.
        NOMADML_SPEC_TOML   = [[ model.spec_text | hcl ]]
        # Relative [data] paths are the spec file's: where it was when scheduled.
        NOMADML_SPEC_DIR    = [[ model.spec_dir | hcl ]]
      }
      resources {
        cpu    = [[ retraining.resources.cpu ]]
        memory = [[ retraining.resources.memory ]]
      }
[% block train_extra %][% endblock %]
    }
  }
}
