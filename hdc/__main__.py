from hdc.cli import main

main()
