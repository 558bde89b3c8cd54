from tracestop.cli import main

main()
