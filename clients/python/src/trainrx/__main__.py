from trainrx.cli import main

main()
