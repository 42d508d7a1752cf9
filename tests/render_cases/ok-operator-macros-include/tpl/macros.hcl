[#- Reusable snippets for the company's job templates; callers indent them. -#]
[% macro ephemeral_disk(size, migrate=false) -%]
ephemeral_disk {
  size    = [[ size ]]
  migrate = [[ migrate | hcl ]]
}
[%- endmacro %]

[% macro task_meta(values) -%]
meta {
[%- for key, value in values | dictsort %]
  [[ key ]] = [[ value | hcl ]]
[%- endfor %]
}
[%- endmacro %]
