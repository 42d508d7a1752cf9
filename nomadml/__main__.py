from nomadml.cli.main import main

main()
