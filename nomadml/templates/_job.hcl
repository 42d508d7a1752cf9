[#- Shared by the shipped job templates (imported as "nomadml/_job.hcl"): where the
    job runs and the ownership meta every job nomadml writes carries. -#]
[% macro placement_and_meta(job, note="") %]  datacenters = [[ job.datacenters | hcl ]]
  namespace   = [[ job.namespace | hcl ]]
  region      = [[ job.region | hcl ]]

[%- if note %]

  # [[ note ]]
[%- else %]
[% endif %]
  meta = {
[%- for key, value in job.meta | dictsort %]
    [[ key | hcl ]] = [[ value | hcl ]]
[%- endfor %]
  }
[%- endmacro %]
