[#- The always-on post-promotion guard: one allocation running `nomadml guard --all`,
    which bakes every managed line whose rollout record says "baking". Its state lives
    in Nomad Variables (the rollout records), so a restarted or rescheduled allocation
    goes on from the last look, and acting on a regression is a check-and-set claim:
    two guards never act twice on one regression. -#]
[% import "nomadml/_job.hcl" as job_meta -%]
job [[ job.id | hcl ]] {
  type        = "service"
[[ job_meta.placement_and_meta(job) ]]

  group "guard" {
    count = 1

    restart {
      attempts = 10
      interval = "5m"
      delay    = "2s"
      mode     = "delay"
    }

    task "guard" {
      driver = [[ guard.driver | hcl ]]
[%- if guard.task_api %]
      # Nomad's Task API with the task's workload identity (NOMAD_TOKEN): its rights are
      # the policy bound to this job (nomad acl policy apply -job ...).
      identity {
        env = true
      }
[%- endif %]
      config {
[%- if guard.driver == "docker" %]
        image        = [[ guard.image | hcl ]]
        network_mode = "host"
[%- endif %]
        command = [[ guard.command[0] | hcl ]]
        args    = [[ guard.command[1:] | hcl ]]
      }
      env = {
        NOMAD_ADDR = [[ guard.nomad_addr | hcl ]]
      }
      # SIGTERM ends the guard between looks; the next allocation resumes each bake.
      kill_timeout = "10s"
      resources {
        cpu    = 100
        memory = 128
      }
    }
  }
}
