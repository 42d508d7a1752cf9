from nomadml.cli import main

main()
