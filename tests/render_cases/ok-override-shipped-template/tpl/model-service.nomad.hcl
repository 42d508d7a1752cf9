[#- A site-wide replacement of the shipped service template (same file name). -#]
job [[ job.id | hcl ]] {
  datacenters = [[ job.datacenters | hcl ]]
  meta        = [[ job.meta | hcl ]]

  group "model" {
    count = [[ serving.count ]]

    task "serve" {
      driver = "docker"
      config {
        image = [[ serving.image | hcl ]]
        args  = [[ serving.args | hcl ]]
      }
      meta = [[ spec.validation.min_metrics | hcl ]]
    }
  }
}
