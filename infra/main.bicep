// StreamDuck on Azure: Flex Consumption function app, identity-only access to every Azure service it uses.
// `azd up` deploys this file at subscription scope with infra/main.parameters.json.
targetScope = 'subscription'

// --- Environment ----------------------------------------------------------------------------------------
@minLength(1)
@maxLength(64)
@description('Name of the azd environment; every resource name and the azd-env-name tag derive from it.')
param environmentName string

@minLength(1)
@description('Primary location for all resources (must offer Flex Consumption and Azure Managed Redis).')
param location string

@description('Object ID of the deploying user or service principal (azd sets AZURE_PRINCIPAL_ID). It gets the same data roles as the app, for local runs against Azure. Empty skips them.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
])
@description('Kind of principal that principalId names (ServicePrincipal in CI pipelines).')
param principalType string = 'User'

@description('Resource group name; empty derives rg-<environmentName>.')
param resourceGroupName string = ''

// --- Event Hubs -> MotherDuck ---------------------------------------------------------------------------
@description('Event Hub -> MotherDuck mappings. Element k becomes mapping N = k + 1 (EVENTHUBNAME_N, MOTHERDUCK_N_*). Keys: eventHub, consumerGroup, database, schema, table (required); partitions (default 4), retentionHours (default 24, at most 168 on Standard), batch (default 1000), format (json | text | binary, default json), retentionDays (optional, days of data kept by compaction).')
param mappings array

@secure()
@description('MotherDuck access token (stored in Key Vault as motherduck-token; app setting MOTHERDUCK_TOKEN references it).')
param motherDuckToken string

@minValue(1)
@description('STREAMDUCK_MAX_EVENT_BYTES: events with a larger body are parked in the dead-letter table.')
param maxEventBytes int = 1048576

@minValue(-1)
@description('STREAMDUCK_RETRY_MAX_COUNT: retries of a failing batch before the host moves on; -1 retries forever (no loss).')
param retryMaxCount int = -1

@description('STREAMDUCK_RETRY_MIN_INTERVAL: first back-off delay (hh:mm:ss).')
param retryMinInterval string = '00:00:01'

@description('STREAMDUCK_RETRY_MAX_INTERVAL: longest back-off delay (hh:mm:ss).')
param retryMaxInterval string = '00:05:00'

@description('STREAMDUCK_COMPACTION_SCHEDULE: six-field NCRONTAB schedule of the compaction timer.')
param compactionSchedule string = '0 30 3 * * *'

@minValue(1)
@description('STREAMDUCK_COMPACTION_BUDGET_SECONDS: compaction starts no new table after this many seconds.')
param compactionBudgetSeconds int = 240

// --- Kafka engagement pipeline --------------------------------------------------------------------------
@allowed([
  'eventhubs'
  'external'
])
@description('eventhubs: the Kafka topics are hubs of a dedicated Event Hubs namespace (SAS, see docs/deploy.md). external: bring your own Kafka (externalKafka*).')
param kafkaMode string = 'eventhubs'

@description('Kafka topics of the engagement pipeline (TOPIC_CONTENT, TOPIC_ENGAGE, TOPIC_OUT).')
param kafkaTopics object = {
  content: 'content.flat'
  engage: 'engagement_events.flat'
  out: 'engagement_enriched'
}

@minValue(1)
@maxValue(32)
@description('Partitions of each Kafka topic hub (kafkaMode eventhubs).')
param kafkaTopicPartitions int = 4

@minValue(1)
@maxValue(168)
@description('Retention of each Kafka topic hub in hours (kafkaMode eventhubs).')
param kafkaTopicRetentionHours int = 168

@description('KAFKA_CONSUMER_GROUP: stable consumer group of the Kafka-triggered functions.')
param kafkaConsumerGroup string = 'streamduck-engagement'

@description('kafkaMode external: bootstrap servers, security protocol, SASL mechanism and user name.')
param externalKafka object = {
  brokers: ''
  protocol: 'SASLSSL'
  authMode: 'PLAIN'
  username: ''
}

@secure()
@description('kafkaMode external: SASL password (stored in Key Vault as kafka-password).')
param externalKafkaPassword string = ''

// --- ClickHouse -------------------------------------------------------------------------------------------
@allowed([
  'cloud'
  'containerapp'
])
@description('cloud: connect to ClickHouse Cloud (clickHouseHost...). containerapp: run a single self-hosted ClickHouse on Azure Container Apps (evaluation only, ephemeral disk).')
param clickHouseMode string = 'cloud'

@description('CLICKHOUSE_HOST of the ClickHouse Cloud service (clickHouseMode cloud), e.g. abc123.eastus.azure.clickhouse.cloud.')
param clickHouseHost string = ''

@description('CLICKHOUSE_PORT (HTTPS) of the ClickHouse Cloud service.')
param clickHousePort int = 8443

@description('CLICKHOUSE_USER.')
param clickHouseUser string = 'default'

@description('CLICKHOUSE_DATABASE.')
param clickHouseDatabase string = 'analytics'

@secure()
@description('CLICKHOUSE_PASSWORD (stored in Key Vault as clickhouse-password; also the self-hosted server password).')
param clickHousePassword string

@description('Container image of the self-hosted ClickHouse (clickHouseMode containerapp).')
param clickHouseImage string = 'docker.io/clickhouse/clickhouse-server:25.8'

// --- Redis ------------------------------------------------------------------------------------------------
@description('Azure Managed Redis SKU of the leaderboard / content store.')
param redisSku string = 'Balanced_B0'

@description('false (default): Entra ID only, the app signs in as its managed identity. true: access keys on, REDIS_URL with the key is stored in Key Vault (for clients without Entra ID support).')
param redisUseAccessKeys bool = false

// --- Function app -------------------------------------------------------------------------------------
@minValue(1)
@maxValue(1000)
@description('Flex Consumption scale-out limit.')
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
@description('Flex Consumption instance memory (MB); DuckDB batches like 2048 or more.')
param instanceMemoryMB int = 2048

// --- Network and monitoring -------------------------------------------------------------------------------
@description('true: VNet with private endpoints for storage, Event Hubs, Key Vault and Redis; public access to them is disabled.')
param enableVnet bool = false

@description('Address space of the optional VNet.')
param vnetAddressPrefix string = '10.40.0.0/16'

@description('Subnets of the optional VNet, inside vnetAddressPrefix.')
param vnetSubnetPrefixes object = {
  function: '10.40.0.0/24'
  privateEndpoints: '10.40.1.0/24'
  containerApps: '10.40.2.0/23'
}

@minValue(30)
@maxValue(730)
@description('Log Analytics retention in days.')
param logRetentionDays int = 30

@description('E-mail address that receives the alerts; empty creates the alert rules without a notification.')
param alertEmail string = ''

@minValue(1)
@description('Alert when the end-to-end lag of a mapping or Kafka topic (streamduck.*.lag) exceeds this many seconds.')
param alertLagSeconds int = 300

@allowed([
  10
  15
  30
  45
])
@description('Alert when a mapping receives events but writes none for this many minutes (the log alert window).')
param alertStalledMinutes int = 15

@description('Further app settings as [{name, value}] for the optional tuning variables listed in docs/deploy.md.')
param extraAppSettings array = []

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var useEventHubsKafka = kafkaMode == 'eventhubs'
var selfHostClickHouse = clickHouseMode == 'containerapp'
var functionAppName = '${abbrs.webSitesFunctions}${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? '${abbrs.resourcesResourceGroups}${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    location: location
    tags: tags
    workspaceName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    appInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    retentionInDays: logRetentionDays
  }
}

module network 'app/network.bicep' = if (enableVnet) {
  name: 'network'
  scope: rg
  params: {
    name: '${abbrs.networkVirtualNetworks}${resourceToken}'
    location: location
    tags: tags
    addressPrefix: vnetAddressPrefix
    subnetPrefixes: vnetSubnetPrefixes
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    workspaceId: monitoring.outputs.workspaceId
    publicNetworkAccess: enableVnet ? 'Disabled' : 'Enabled'
  }
}

module eventHubs 'app/eventhubs.bicep' = {
  name: 'eventhubs'
  scope: rg
  params: {
    name: '${abbrs.eventHubNamespaces}${resourceToken}'
    location: location
    tags: tags
    mappings: mappings
    workspaceId: monitoring.outputs.workspaceId
    publicNetworkAccess: enableVnet ? 'Disabled' : 'Enabled'
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    workspaceId: monitoring.outputs.workspaceId
    publicNetworkAccess: enableVnet ? 'Disabled' : 'Enabled'
    motherDuckToken: motherDuckToken
    clickHousePassword: clickHousePassword
  }
}

module kafka 'app/kafka.bicep' = {
  name: 'kafka'
  scope: rg
  params: {
    useEventHubs: useEventHubsKafka
    name: '${abbrs.eventHubNamespaces}kafka-${resourceToken}'
    location: location
    tags: tags
    topics: [
      kafkaTopics.content
      kafkaTopics.engage
      kafkaTopics.out
    ]
    partitions: kafkaTopicPartitions
    retentionHours: kafkaTopicRetentionHours
    consumerGroup: kafkaConsumerGroup
    externalKafka: externalKafka
    externalPassword: externalKafkaPassword
    keyVaultName: keyVault.outputs.name
    workspaceId: monitoring.outputs.workspaceId
    publicNetworkAccess: enableVnet ? 'Disabled' : 'Enabled'
  }
}

module redis 'app/redis.bicep' = {
  name: 'redis'
  scope: rg
  params: {
    name: '${abbrs.cacheRedisEnterprise}${resourceToken}'
    location: location
    tags: tags
    skuName: redisSku
    useAccessKeys: redisUseAccessKeys
    publicNetworkAccess: enableVnet ? 'Disabled' : 'Enabled'
    keyVaultName: keyVault.outputs.name
    workspaceId: monitoring.outputs.workspaceId
  }
}

module clickHouseServer 'app/clickhouse.bicep' = if (selfHostClickHouse) {
  name: 'clickhouse'
  scope: rg
  params: {
    environmentName: '${abbrs.appManagedEnvironments}${resourceToken}'
    appName: '${abbrs.appContainerApps}clickhouse-${resourceToken}'
    location: location
    tags: tags
    image: clickHouseImage
    user: clickHouseUser
    database: clickHouseDatabase
    passwordSecretUri: keyVault.outputs.clickHousePasswordSecretUri
    identityId: identity.outputs.id
    workspaceName: monitoring.outputs.workspaceName
    infrastructureSubnetId: enableVnet ? network.outputs.containerAppsSubnetId : ''
    vnetId: enableVnet ? network.outputs.id : ''
  }
  dependsOn: [
    rbacApp
  ]
}

module functionApp 'app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    workspaceId: monitoring.outputs.workspaceId
    eventHubsNamespaceFqdn: eventHubs.outputs.fqdn
    mappings: mappings
    keyVaultName: keyVault.outputs.name
    motherDuckTokenSecretName: keyVault.outputs.motherDuckTokenSecretName
    clickHousePasswordSecretName: keyVault.outputs.clickHousePasswordSecretName
    kafkaPasswordSecretName: kafka.outputs.passwordSecretName
    maxEventBytes: maxEventBytes
    retryMaxCount: retryMaxCount
    retryMinInterval: retryMinInterval
    retryMaxInterval: retryMaxInterval
    compactionSchedule: compactionSchedule
    compactionBudgetSeconds: compactionBudgetSeconds
    kafkaBrokers: kafka.outputs.brokers
    kafkaProtocol: kafka.outputs.protocol
    kafkaAuthMode: kafka.outputs.authMode
    kafkaUsername: kafka.outputs.username
    kafkaConsumerGroup: kafkaConsumerGroup
    topicContent: kafkaTopics.content
    topicEngage: kafkaTopics.engage
    topicOut: kafkaTopics.out
    redisUrl: redis.outputs.url
    redisUrlSecretName: redis.outputs.urlSecretName
    clickHouseHost: selfHostClickHouse ? clickHouseServer.outputs.host : clickHouseHost
    clickHousePort: selfHostClickHouse ? 443 : clickHousePort
    clickHouseUser: clickHouseUser
    clickHouseDatabase: clickHouseDatabase
    clickHouseSecure: true
    integrationSubnetId: enableVnet ? network.outputs.functionSubnetId : ''
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    extraAppSettings: extraAppSettings
  }
  dependsOn: [
    rbacApp
  ]
}

// The app's identity gets exactly the data roles it uses; role assignments exist before the app starts.
module rbacApp 'app/rbac.bicep' = {
  name: 'rbac-app'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    storageAccountName: storage.outputs.name
    eventHubsNamespaceName: eventHubs.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    redisName: redis.outputs.name
    keyVaultRoleId: '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User
    eventHubsRoleIds: [
      'a638d3c7-ab3a-418d-83e6-5f17a39d4fde' // Azure Event Hubs Data Receiver
    ]
  }
}

// The deploying user gets the same data roles (plus sending, for the simulator) to run the app locally.
module rbacDeployer 'app/rbac.bicep' = if (!empty(principalId)) {
  name: 'rbac-deployer'
  scope: rg
  params: {
    principalId: principalId
    principalType: principalType
    storageAccountName: storage.outputs.name
    eventHubsNamespaceName: eventHubs.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    redisName: redis.outputs.name
    keyVaultRoleId: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // Key Vault Secrets Officer
    eventHubsRoleIds: [
      'a638d3c7-ab3a-418d-83e6-5f17a39d4fde' // Azure Event Hubs Data Receiver
      '2b629674-e913-4c01-ae53-ef4638d8f975' // Azure Event Hubs Data Sender
    ]
  }
  dependsOn: [
    rbacApp // Redis applies one access policy assignment at a time
  ]
}

module privateEndpoints 'app/private-endpoints.bicep' = if (enableVnet) {
  name: 'private-endpoints'
  scope: rg
  params: {
    location: location
    tags: tags
    namePrefix: abbrs.networkPrivateEndpoints
    vnetId: enableVnet ? network.outputs.id : ''
    subnetId: enableVnet ? network.outputs.privateEndpointSubnetId : ''
    storageAccountId: storage.outputs.id
    eventHubsNamespaceId: eventHubs.outputs.id
    kafkaNamespaceId: kafka.outputs.namespaceId
    keyVaultId: keyVault.outputs.id
    redisId: redis.outputs.id
  }
}

module observability 'app/observability.bicep' = {
  name: 'observability'
  scope: rg
  params: {
    location: location
    tags: tags
    namePrefix: resourceToken
    workspaceId: monitoring.outputs.workspaceId
    appInsightsId: monitoring.outputs.appInsightsId
    functionAppName: functionAppName
    alertEmail: alertEmail
    lagThresholdSeconds: alertLagSeconds
    stalledMinutes: alertStalledMinutes
  }
}

// Outputs become azd environment values (azd env get-values); infra/hooks/postprovision.* reads them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CLIENT_ID string = identity.outputs.clientId
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output AZURE_STORAGE_QUEUE_ENDPOINT string = storage.outputs.queueEndpoint
output AZURE_STORAGE_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.endpoint
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.appInsightsConnectionString
output EVENTHUB_NAMESPACE string = eventHubs.outputs.fqdn
output KAFKA_BROKERS string = kafka.outputs.brokers
output REDIS_HOST string = redis.outputs.host
output CLICKHOUSE_HOST string = selfHostClickHouse ? clickHouseServer.outputs.host : clickHouseHost
output STREAMDUCK_LOCAL_SETTINGS array = functionApp.outputs.localSettings
