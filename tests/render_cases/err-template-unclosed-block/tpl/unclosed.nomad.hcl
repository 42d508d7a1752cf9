job [[ job.id | hcl ]] {
[% if serving.port %]
  # static port
}
