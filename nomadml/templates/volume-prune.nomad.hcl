[#- The volume prune job: a one-shot sysbatch job that runs once on every node with
    the line's host volume and removes the installed versions of the line's major
    that nomadml no longer keeps (`nomadml volume prune`). It runs the bootstrap
    program from the line's own model image, so it needs nothing else on the node. -#]
[% import "nomadml/_job.hcl" as job_meta -%]
job [[ job.id | hcl ]] {
  type        = "sysbatch"
[[ job_meta.placement_and_meta(job) ]]

  group "prune" {
    volume "models" {
      type      = "host"
      source    = [[ volume.source | hcl ]]
      read_only = false
    }

    restart {
      attempts = 0
      mode     = "fail"
    }

    task "prune" {
      driver = "docker"
      config {
        image        = [[ model.image | hcl ]]
        network_mode = "host"
        command      = "python3"
        args = [
          "/opt/nomadml/bootstrap.py", "prune",
          "--volume", "/models",
          "--model", [[ model.name | hcl ]],
          "--major", [[ model.major | string | hcl ]],
          "--keep", [[ keep | hcl ]],
[%- if dry_run %]
          "--dry-run",
[%- endif %]
        ]
      }
      volume_mount {
        volume      = "models"
        destination = "/models"
      }
      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
